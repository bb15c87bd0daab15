import type { FastifyPluginAsync } from "fastify";
import { ErrorCode } from "../../errors.js";
import { checkedToken, type DeviceRules, HostList, PUSH_PROVIDERS } from "../../push/devices.js";
import type { PushProviderKind } from "../../push/ports.js";
import { DEVICE_NAMES, type DeviceName } from "../../routing/ports.js";
import { defaultPushDeviceKind, type PushDeviceStore } from "../../storage/ports.js";
import { callerOf } from "../auth.js";
import type { GateDeps } from "../deps.js";
import { okReplySchema, replies } from "../schemas.js";

export interface PushRouteOptions extends Pick<GateDeps, "status"> {
  devices: PushDeviceStore;
  config: Pick<
    GateDeps["config"],
    "PUSH_DEVICES_PER_USER" | "PUSH_TOKEN_MAX_BYTES" | "WEB_PUSH_VAPID_PUBLIC_KEY" | "WEB_PUSH_ENDPOINT_HOSTS"
  >;
}

const DEVICE_ID_PATTERN = "^[A-Za-z0-9._:-]{1,64}$";

const registerBodySchema = {
  type: "object",
  properties: {
    deviceId: { type: "string", pattern: DEVICE_ID_PATTERN },
    provider: { type: "string", enum: PUSH_PROVIDERS },
    // The device kind its app logs in as; absent: the provider's (webpush: web; fcm, apns: mobile).
    kind: { type: "string", enum: DEVICE_NAMES },
    // Bounded in bytes by PUSH_TOKEN_MAX_BYTES (PAYLOAD_TOO_LARGE), beyond the body limit.
    token: { type: "string", minLength: 1 },
  },
  required: ["deviceId", "provider", "token"],
  additionalProperties: false,
} as const;

const removeParamsSchema = {
  type: "object",
  properties: { deviceId: { type: "string", pattern: DEVICE_ID_PATTERN } },
  required: ["deviceId"],
} as const;

const removeReplySchema = {
  type: "object",
  properties: { error: { type: "integer" }, removed: { type: "boolean" } },
  required: ["error", "removed"],
} as const;

const configReplySchema = {
  type: "object",
  properties: { error: { type: "integer" }, webPushPublicKey: { type: "string" } },
  required: ["error", "webPushPublicKey"],
} as const;

/**
 * Push devices (issue 18), each route with the login token (`Authorization: Bearer <token>`,
 * `X-Uid`) but the config:
 * - PUT /v1/push/devices `{deviceId, provider: webpush|fcm|apns, kind?: desktop|web|mobile, token}`
 *   registers the caller's device or replaces its token (kind: what its app logs in as; it is
 *   pushed while the user has no session of that kind) (a webpush token is the browser's PushSubscription as JSON, on
 *   a host of WEB_PUSH_ENDPOINT_HOSTS); past PUSH_DEVICES_PER_USER the least recently registered
 *   goes. INVALID_ARGUMENT for a malformed one, PAYLOAD_TOO_LARGE past PUSH_TOKEN_MAX_BYTES.
 * - DELETE /v1/push/devices/:deviceId removes it (a logout, push turned off): `{removed}`.
 * - GET /v1/push/config `{webPushPublicKey}`: the VAPID key a browser subscribes with ("" when
 *   this deployment has no Web Push).
 */
export const pushRoute: FastifyPluginAsync<PushRouteOptions> = async (app, { status, devices, config }) => {
  const rules: DeviceRules = {
    tokenMaxBytes: config.PUSH_TOKEN_MAX_BYTES,
    webPushHosts: new HostList(config.WEB_PUSH_ENDPOINT_HOSTS),
  };

  app.put<{ Body: { deviceId: string; provider: PushProviderKind; kind?: DeviceName; token: string } }>(
    "/v1/push/devices",
    { schema: { body: registerBodySchema, response: replies(okReplySchema) } },
    async (request) => {
      const uid = await callerOf(status, request);
      const { deviceId, provider } = request.body;
      const token = checkedToken(provider, request.body.token, rules);
      const kind = request.body.kind ?? defaultPushDeviceKind(provider);
      await devices.register(
        { uid, deviceId, provider, kind, token, updatedAt: Date.now() },
        config.PUSH_DEVICES_PER_USER,
      );
      return { error: ErrorCode.OK };
    },
  );

  app.delete<{ Params: { deviceId: string } }>(
    "/v1/push/devices/:deviceId",
    { schema: { params: removeParamsSchema, response: replies(removeReplySchema) } },
    async (request) => {
      const uid = await callerOf(status, request);
      return { error: ErrorCode.OK, removed: await devices.unregister(uid, request.params.deviceId) };
    },
  );

  app.get("/v1/push/config", { schema: { response: replies(configReplySchema) } }, async () => ({
    error: ErrorCode.OK,
    webPushPublicKey: config.WEB_PUSH_VAPID_PUBLIC_KEY,
  }));
};

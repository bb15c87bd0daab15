import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { apnsExpiration } from "./apns.js";
import { readServiceAccount, ServiceAccountTokens } from "./google-access-token.js";
import type { PushDevice, PushNotification, PushOutcome, PushProvider } from "./ports.js";

/** The settings FCM reads. */
export type FcmConfig = Pick<Config, "FCM_SERVICE_ACCOUNT_FILE" | "FCM_ENDPOINT" | "PUSH_SEND_TIMEOUT_MS">;

/** The OAuth scope of FCM HTTP v1's send. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

/** The FCM provider, or undefined when FCM_SERVICE_ACCOUNT_FILE is empty; a bad key file throws ConfigError. */
export function fcmProviderFrom(config: FcmConfig, log: Logger): FcmProvider | undefined {
  return config.FCM_SERVICE_ACCOUNT_FILE === "" ? undefined : new FcmProvider(config, log);
}

/**
 * FCM HTTP v1 (`projects.messages.send`), authorized by the service account in
 * FCM_SERVICE_ACCOUNT_FILE (`ServiceAccountTokens`: one access token, reused until shortly
 * before it expires). One request per device; FCM's UNREGISTERED, or an INVALID_ARGUMENT about
 * the token itself, means the token is gone. A 401 (a token revoked or expired early) is tried
 * once more with a fresh access token; anything else fails without a retry.
 */
export class FcmProvider implements PushProvider {
  readonly kind = "fcm" as const;
  readonly #tokens: ServiceAccountTokens;
  readonly #sendUrl: string;
  readonly #timeoutMs: number;
  readonly #log: Logger;

  constructor(config: FcmConfig, log: Logger) {
    const account = readServiceAccount(config.FCM_SERVICE_ACCOUNT_FILE);
    this.#timeoutMs = config.PUSH_SEND_TIMEOUT_MS;
    this.#tokens = new ServiceAccountTokens(account, FCM_SCOPE, this.#timeoutMs);
    const base = config.FCM_ENDPOINT.replace(/\/+$/, "");
    this.#sendUrl = `${base}/v1/projects/${encodeURIComponent(account.projectId)}/messages:send`;
    this.#log = log;
  }

  async send(device: PushDevice, notification: PushNotification): Promise<PushOutcome> {
    const body = JSON.stringify(fcmMessage(device.token, notification));
    try {
      let accessToken = await this.#accessToken();
      let res = await this.#post(accessToken, body);
      if (res.status === 401) {
        this.#log.info("FCM refused its access token before its expiry: fetching another");
        await res.arrayBuffer(); // frees the connection for the retry
        this.#tokens.invalidate(accessToken);
        accessToken = await this.#accessToken();
        res = await this.#post(accessToken, body);
      }
      return fcmOutcome(res.status, await res.text());
    } catch (err) {
      return { kind: "failed", reason: errorText(err) };
    }
  }

  async #accessToken(): Promise<string> {
    try {
      return await this.#tokens.get();
    } catch (err) {
      throw new Error(`FCM access token: ${errorText(err)}`);
    }
  }

  #post(accessToken: string, body: string): Promise<Response> {
    return fetch(this.#sendUrl, {
      method: "POST",
      headers: { authorization: `Bearer ${accessToken}`, "content-type": "application/json; charset=utf-8" },
      body,
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
  }
}

/**
 * The v1 message for one device: a notification (title, body) shown by the system, data for the
 * app (the conversation and seq to open; FCM data values are strings), collapsing per
 * conversation (Android's collapse_key for undelivered ones and tag for the shown one, APNs'
 * apns-collapse-id), the TTL, and the badge (Android's notification_count, iOS's aps.badge).
 */
export function fcmMessage(token: string, n: PushNotification) {
  return {
    message: {
      token,
      notification: { title: n.title, body: n.body },
      data: { convId: n.convId, seq: String(n.seq) },
      android: {
        collapse_key: n.collapseKey,
        ttl: `${n.ttlSeconds}s`,
        priority: "high",
        notification: { tag: n.collapseKey, notification_count: n.badge },
      },
      apns: {
        headers: { "apns-collapse-id": n.collapseKey, "apns-expiration": String(apnsExpiration(n.ttlSeconds)) },
        payload: { aps: { badge: n.badge } },
      },
    },
  };
}

interface FcmErrorBody {
  error?: {
    code?: number;
    status?: string;
    message?: string;
    details?: { "@type"?: string; errorCode?: string; fieldViolations?: { field?: string }[] }[];
  };
}

/**
 * What an answer of messages:send means. Gone only when FCM says so of the token (UNREGISTERED;
 * INVALID_ARGUMENT naming `message.token`): other refusals (a wrong project, SENDER_ID_MISMATCH,
 * quota) come from our configuration or FCM's state, and must not drop every user's devices.
 */
export function fcmOutcome(status: number, text: string): PushOutcome {
  if (status >= 200 && status < 300) return { kind: "sent" };
  let error: FcmErrorBody["error"];
  try {
    error = (JSON.parse(text) as FcmErrorBody).error;
  } catch {
    error = undefined;
  }
  const details = error?.details ?? [];
  const errorCode = details.find((d) => typeof d.errorCode === "string")?.errorCode ?? error?.status;
  if (errorCode === "UNREGISTERED") return { kind: "gone" };
  if (errorCode === "INVALID_ARGUMENT") {
    const aboutToken = details.some((d) => d.fieldViolations?.some((v) => v.field === "message.token"));
    if (aboutToken || /registration token/i.test(error?.message ?? "")) return { kind: "gone" };
  }
  const what = [errorCode, error?.message].filter((v) => v !== undefined && v !== "").join(": ");
  return { kind: "failed", reason: `FCM answered ${status}${what ? ` (${what})` : ""}` };
}

/** An error's message with its cause's: fetch says only "fetch failed", its cause what failed (ECONNREFUSED, a TLS error). */
function errorText(err: unknown): string {
  const { message, cause } = err as { message?: unknown; cause?: { message?: unknown } };
  const text = String(message ?? err);
  return typeof cause?.message === "string" ? `${text} (${cause.message})` : text;
}

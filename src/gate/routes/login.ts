import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../../errors.js";
import { DEVICE_NAMES, type DeviceName } from "../../routing/ports.js";
import type { UserRecord } from "../../storage/ports.js";
import { normalizeEmail } from "../../verify/email.js";
import type { GateDeps } from "../deps.js";
import { verifyPassword } from "../password.js";
import { replies } from "../schemas.js";

interface LoginBody {
  email?: string;
  user?: string;
  password: string;
  /** The device kind the token is for; a chat login from another kind is refused. Absent: any. */
  device?: DeviceName;
}

const bodySchema = {
  type: "object",
  properties: {
    email: { type: "string" },
    user: { type: "string" },
    password: { type: "string", minLength: 1 },
    device: { type: "string", enum: [...DEVICE_NAMES] },
  },
  required: ["password"],
  anyOf: [{ required: ["email"] }, { required: ["user"] }],
} as const;

const loginReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    uid: { type: "string" },
    token: { type: "string" },
    expiresAtMs: { type: "integer" },
    nodeId: { type: "string" },
    host: { type: "string" },
    port: { type: "integer" },
    wsUrl: { type: "string" },
    device: { type: "string" },
  },
  required: ["error", "uid", "token", "expiresAtMs", "nodeId", "host", "port", "wsUrl"],
} as const;

export interface LoginRouteOptions extends Pick<GateDeps, "users" | "status" | "limiter"> {
  config: Pick<GateDeps["config"], "LOGIN_MAX_FAILURES" | "LOGIN_LOCKOUT_SECONDS">;
  /** A hash of nothing, checked when the user does not exist so that case costs the same scrypt work. */
  dummyHash: string;
}

export const loginRoute: FastifyPluginAsync<LoginRouteOptions> = async (app, opts) => {
  const { users, status, limiter, config, dummyHash } = opts;
  app.post<{ Body: LoginBody }>(
    "/v1/login",
    { schema: { body: bodySchema, response: replies(loginReplySchema) } },
    async (request) => {
      const { email, user: name, password, device } = request.body;
      const user: UserRecord | null =
        email !== undefined ? await users.byEmail(normalizeEmail(email)) : await users.byName(name ?? "");
      // Unknown names lock like accounts do, so a lockout tells nothing about who exists.
      const failures = `login:fail:${user ? user.uid : `?${(email ?? name ?? "").trim().toLowerCase()}`}`;
      const attempt = await limiter.hit(failures, config.LOGIN_MAX_FAILURES, config.LOGIN_LOCKOUT_SECONDS);
      if (!attempt.allowed) {
        throw new AppError(
          ErrorCode.ACCOUNT_LOCKED,
          `too many wrong passwords; retry in ${attempt.retryAfterSeconds} s`,
        );
      }
      const passwordOk = await verifyPassword(password, user?.passwordHash ?? dummyHash);
      if (!user || !passwordOk) throw new AppError(ErrorCode.BAD_CREDENTIALS);
      await limiter.reset(failures);

      const { node } = okOrThrow(await status.getChatNode({ uid: user.uid }, { requestId: request.id }));
      if (!node) throw new AppError(ErrorCode.NO_CHAT_NODE);
      const token = okOrThrow(await status.issueToken({ uid: user.uid, device }, { requestId: request.id }));
      return {
        error: ErrorCode.OK,
        uid: user.uid,
        token: token.token,
        expiresAtMs: Number(token.expiresAtMs),
        nodeId: node.nodeId,
        host: node.host,
        port: node.tcpPort,
        wsUrl: node.wsUrl,
        ...(device ? { device } : {}),
      };
    },
  );
};

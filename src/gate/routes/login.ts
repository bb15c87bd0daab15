import type { FastifyPluginAsync } from "fastify";
import { botLoginRefused, isBotAccount } from "../../bots/account.js";
import { AppError, DetailedError, ErrorCode, okOrThrow } from "../../errors.js";
import { DEVICE_NAMES, type DeviceName } from "../../routing/ports.js";
import { secretDigest } from "../../routing/secret-digest.js";
import type { BanStore, UserRecord } from "../../storage/ports.js";
import { normalizeEmail } from "../../verify/email.js";
import type { GateDeps } from "../deps.js";
import type { PasswordHasher } from "../password-hasher.js";
import { emailSchema, passwordSchema, replies, userNameSchema } from "../schemas.js";

interface LoginBody {
  email?: string;
  user?: string;
  password: string;
  /** The device kind the token is for; a chat login from another kind is refused. Absent: any. */
  device?: DeviceName;
}

function bodySchema(passwordMax: number) {
  return {
    type: "object",
    properties: {
      email: emailSchema,
      user: userNameSchema,
      password: passwordSchema(1, passwordMax),
      device: { type: "string", enum: [...DEVICE_NAMES] },
    },
    required: ["password"],
    anyOf: [{ required: ["email"] }, { required: ["user"] }],
  } as const;
}

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
  config: Pick<
    GateDeps["config"],
    | "LOGIN_MAX_FAILURES"
    | "LOGIN_LOCKOUT_SECONDS"
    | "LOGIN_MAX_PER_ADDR_PER_MINUTE"
    | "LOGIN_MAX_PER_SECOND"
    | "PASSWORD_MAX_LENGTH"
  >;
  hasher: PasswordHasher;
  /** A hash of nothing, checked when the user does not exist so that case costs the same scrypt work. */
  dummyHash: string;
  /** Bans of the Server API (issue 18): a banned user's login answers ACCOUNT_BANNED. */
  bans?: Pick<BanStore, "byUid">;
}

/** A limiter key for what a client typed: a fixed-size digest, whatever it sent. */
function keyOf(typed: string): string {
  return secretDigest(typed.trim().toLowerCase());
}

export const loginRoute: FastifyPluginAsync<LoginRouteOptions> = async (app, opts) => {
  const { users, status, limiter, config, hasher, dummyHash, bans } = opts;
  /** The budgets a login spends before any database read or hash: per address, then for all. */
  async function admit(clientAddr: string): Promise<void> {
    for (const [key, limit, seconds] of [
      // An address as text is at most 45 characters (IPv6); anything longer came from a header.
      [
        `login:addr:${clientAddr.length <= 45 ? clientAddr : keyOf(clientAddr)}`,
        config.LOGIN_MAX_PER_ADDR_PER_MINUTE,
        60,
      ],
      ["login:all", config.LOGIN_MAX_PER_SECOND, 1],
    ] as const) {
      const budget = await limiter.hit(key, limit, seconds);
      if (!budget.allowed) {
        throw new AppError(ErrorCode.RATE_LIMITED, `too many logins; retry in ${budget.retryAfterSeconds} s`);
      }
    }
  }
  app.post<{ Body: LoginBody }>(
    "/v1/login",
    { schema: { body: bodySchema(config.PASSWORD_MAX_LENGTH), response: replies(loginReplySchema) } },
    async (request) => {
      const { email, user: name, password, device } = request.body;
      await admit(request.ip);
      const user: UserRecord | null =
        email !== undefined ? await users.byEmail(normalizeEmail(email)) : await users.byName(name ?? "");
      // A bot has no password to guess (issue 18): say so, whatever was sent, without a lockout count.
      if (user && isBotAccount(user)) throw botLoginRefused();
      // Unknown names lock like accounts do, so a lockout tells nothing about who exists.
      const failures = `login:fail:${user ? user.uid : `?${keyOf(email ?? name ?? "")}`}`;
      const attempt = await limiter.hit(failures, config.LOGIN_MAX_FAILURES, config.LOGIN_LOCKOUT_SECONDS);
      if (!attempt.allowed) {
        throw new AppError(
          ErrorCode.ACCOUNT_LOCKED,
          `too many wrong passwords; retry in ${attempt.retryAfterSeconds} s`,
        );
      }
      const passwordOk = await hasher.verify(password, user?.passwordHash ?? dummyHash);
      if (!user || !passwordOk) throw new AppError(ErrorCode.BAD_CREDENTIALS);
      await limiter.reset(failures);
      // After the password: only the account's owner learns it is banned, and why.
      const ban = await bans?.byUid(user.uid);
      if (ban && (ban.untilMs === 0 || ban.untilMs > Date.now())) {
        throw new DetailedError(ErrorCode.ACCOUNT_BANNED, "this account is banned", {
          reason: ban.reason,
          untilMs: ban.untilMs,
        });
      }

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

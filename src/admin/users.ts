import type { FastifyPluginAsync } from "fastify";
import { AppError, codeOf, ErrorCode, okOrThrow } from "../errors.js";
import type { Uid } from "../ids/identifiers.js";
import type { BanRecord, UserRecord } from "../storage/ports.js";
import { isValidEmail, normalizeEmail } from "../verify/email.js";
import type { AdminDeps } from "./deps.js";
import { adminReplies, banReasonSchema, okWith, uidParams, userNameSchema, userSchema } from "./schemas.js";

/**
 * What a user made by the Server API without a password has as its hash: no password matches it
 * (verifyPassword refuses anything that is not a scrypt hash). It logs in once a password is
 * set through POST /v1/reset-password with an emailed code.
 */
export const NO_PASSWORD = "!";

interface NewUserBody {
  name: string;
  email: string;
  password?: string;
}

function newUserSchema(config: AdminDeps["config"]) {
  return {
    type: "object",
    properties: {
      name: userNameSchema,
      email: { type: "string", minLength: 3, maxLength: 254 },
      password: { type: "string", minLength: config.PASSWORD_MIN_LENGTH, maxLength: config.PASSWORD_MAX_LENGTH },
    },
    required: ["name", "email"],
    additionalProperties: false,
  } as const;
}

/** A ban lasting now: ended ones are no ban. */
export function activeBan(ban: BanRecord | null, now = Date.now()): BanRecord | null {
  return ban && (ban.untilMs === 0 || ban.untilMs > now) ? ban : null;
}

/** The ban's end from the request: an ISO time or ms since the epoch; absent: until unbanned. */
function untilOf(until: string | number | undefined, now: number): number {
  if (until === undefined) return 0;
  const ms = typeof until === "number" ? until : Date.parse(until);
  if (!Number.isSafeInteger(ms))
    throw new AppError(ErrorCode.INVALID_ARGUMENT, "until must be an ISO time or ms since the epoch");
  if (ms <= now) throw new AppError(ErrorCode.INVALID_ARGUMENT, "until must be in the future");
  return ms;
}

/** Users: create, import, read, ban, unban, log out everywhere. */
export const adminUserRoutes: FastifyPluginAsync<AdminDeps> = async (app, deps) => {
  const { users, bans, status, ids, config } = deps;

  async function userOr404(uid: Uid): Promise<UserRecord> {
    const user = await users.byUid(uid);
    if (!user) throw new AppError(ErrorCode.NOT_FOUND, `no user ${uid}`);
    return user;
  }

  /**
   * Every session of uid closed on every chat node (told `reason`), and every token revoked (status
   * kicks again on the ring's node what reconnected meanwhile); answers how many tokens went.
   */
  async function endSessions(uid: Uid, reason: ErrorCode, requestId: string): Promise<number> {
    await deps.chat.kickEverywhere(uid, reason);
    const { revoked } = okOrThrow(await status.revokeTokens({ uid, token: "", all: true }, { requestId }));
    return revoked;
  }

  /** Creates one user as register does, without the email code; USER_EXISTS / EMAIL_EXISTS when taken. */
  async function create(body: NewUserBody): Promise<Uid> {
    const email = normalizeEmail(body.email);
    if (!isValidEmail(email)) throw new AppError(ErrorCode.INVALID_ARGUMENT, `bad email ${body.email}`);
    const passwordHash = body.password === undefined ? NO_PASSWORD : await deps.hashPassword(body.password);
    const uid = ids.next();
    await users.create({ uid, name: body.name, email, passwordHash, createdAt: Date.now() });
    return uid;
  }

  app.post<{ Body: NewUserBody }>(
    "/admin/v1/users",
    {
      schema: {
        summary: "Create a user (no email code; without a password it cannot log in until one is set)",
        tags: ["users"],
        body: newUserSchema(config),
        response: adminReplies(okWith({ uid: { type: "string" } }, ["uid"])),
      },
    },
    async (request) => ({ error: ErrorCode.OK, uid: await create(request.body) }),
  );

  app.post<{ Body: { users: NewUserBody[] } }>(
    "/admin/v1/users/import",
    {
      schema: {
        summary: `Create up to ADMIN_IMPORT_MAX users; each answers its uid or its error code`,
        tags: ["users"],
        body: {
          type: "object",
          properties: {
            users: { type: "array", minItems: 1, maxItems: config.ADMIN_IMPORT_MAX, items: newUserSchema(config) },
          },
          required: ["users"],
          additionalProperties: false,
        },
        response: adminReplies(
          okWith(
            {
              created: { type: "integer" },
              results: {
                type: "array",
                items: {
                  type: "object",
                  properties: { name: { type: "string" }, uid: { type: "string" }, error: { type: "integer" } },
                  required: ["name", "error"],
                },
              },
            },
            ["created", "results"],
          ),
        ),
      },
    },
    async (request) => {
      const results: { name: string; uid?: string; error: number }[] = [];
      // One at a time: each password is a scrypt on gate's shared queue.
      for (const body of request.body.users) {
        try {
          results.push({ name: body.name, uid: await create(body), error: ErrorCode.OK });
        } catch (err) {
          if (codeOf(err) === ErrorCode.INTERNAL) throw err;
          results.push({ name: body.name, error: codeOf(err) });
        }
      }
      return { error: ErrorCode.OK, created: results.filter((r) => r.uid).length, results };
    },
  );

  app.get<{ Params: { uid: Uid } }>(
    "/admin/v1/users/:uid",
    {
      schema: {
        summary: "A user, with its ban if one lasts",
        tags: ["users"],
        params: uidParams,
        response: adminReplies(okWith({ user: userSchema }, ["user"])),
      },
    },
    async (request) => {
      const user = await userOr404(request.params.uid);
      const ban = activeBan(await bans.byUid(user.uid));
      return {
        error: ErrorCode.OK,
        user: {
          uid: user.uid,
          name: user.name,
          email: user.email,
          createdAt: user.createdAt,
          ...(ban ? { banned: { untilMs: ban.untilMs, reason: ban.reason } } : {}),
        },
      };
    },
  );

  app.patch<{ Params: { uid: Uid }; Body: { displayName: string } }>(
    "/admin/v1/users/:uid",
    {
      schema: {
        summary: "Change a user's name: the one other users see (and it logs in with); USER_EXISTS when taken",
        tags: ["users"],
        params: uidParams,
        body: {
          type: "object",
          properties: { displayName: userNameSchema },
          required: ["displayName"],
          additionalProperties: false,
        },
        response: adminReplies(okWith({ uid: { type: "string" }, name: { type: "string" } }, ["uid", "name"])),
      },
    },
    async (request) => {
      const { uid } = request.params;
      if (!(await users.rename(uid, request.body.displayName)))
        throw new AppError(ErrorCode.NOT_FOUND, `no user ${uid}`);
      return { error: ErrorCode.OK, uid, name: request.body.displayName };
    },
  );

  app.post<{ Params: { uid: Uid }; Body: { until?: string | number; reason?: string } | undefined }>(
    "/admin/v1/users/:uid/ban",
    {
      schema: {
        summary:
          "Ban a user until a time (or until unbanned): every token revoked, every session closed, login refused",
        tags: ["users"],
        params: uidParams,
        body: {
          type: "object",
          properties: {
            until: {
              anyOf: [
                { type: "string", maxLength: 40, description: "ISO 8601 time" },
                { type: "integer", minimum: 0, description: "ms since the epoch" },
              ],
            },
            reason: banReasonSchema,
          },
          additionalProperties: false,
        },
        response: adminReplies(
          okWith({ untilMs: { type: "integer" }, revoked: { type: "integer" } }, ["untilMs", "revoked"]),
        ),
      },
    },
    async (request) => {
      const user = await userOr404(request.params.uid);
      const now = Date.now();
      const untilMs = untilOf(request.body?.until, now);
      await bans.ban({ uid: user.uid, untilMs, reason: request.body?.reason ?? "", createdAt: now });
      // The ban first (a login racing this call is refused), then every session and token.
      return {
        error: ErrorCode.OK,
        untilMs,
        revoked: await endSessions(user.uid, ErrorCode.ACCOUNT_BANNED, request.id),
      };
    },
  );

  app.post<{ Params: { uid: Uid } }>(
    "/admin/v1/users/:uid/unban",
    {
      schema: {
        summary: "Lift a user's ban",
        tags: ["users"],
        params: uidParams,
        response: adminReplies(okWith({ unbanned: { type: "boolean" } }, ["unbanned"])),
      },
    },
    async (request) => {
      const user = await userOr404(request.params.uid);
      return { error: ErrorCode.OK, unbanned: await bans.unban(user.uid) };
    },
  );

  app.post<{ Params: { uid: Uid } }>(
    "/admin/v1/users/:uid/logout",
    {
      schema: {
        summary: "Log a user out everywhere: every token revoked, every session closed (it may log in again)",
        tags: ["users"],
        params: uidParams,
        response: adminReplies(okWith({ revoked: { type: "integer" } }, ["revoked"])),
      },
    },
    async (request) => {
      const user = await userOr404(request.params.uid);
      return { error: ErrorCode.OK, revoked: await endSessions(user.uid, ErrorCode.TOKEN_INVALID, request.id) };
    },
  );
};

import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode } from "../../errors.js";
import { callerOf } from "../auth.js";
import type { GateDeps } from "../deps.js";
import type { PasswordHasher } from "../password-hasher.js";
import { okReplySchema, passwordSchema, replies } from "../schemas.js";

export interface AccountRouteOptions extends Pick<GateDeps, "users" | "status" | "limiter"> {
  accounts: NonNullable<GateDeps["accounts"]>;
  config: Pick<GateDeps["config"], "LOGIN_MAX_FAILURES" | "LOGIN_LOCKOUT_SECONDS" | "PASSWORD_MAX_LENGTH">;
  hasher: PasswordHasher;
}

/**
 * DELETE /v1/account (`Authorization: Bearer <token>`, `X-Uid`, body `{password}`): deletes the
 * caller's account. The password is asked again, so a token alone (a device left logged in)
 * cannot delete the account; a wrong one answers BAD_CREDENTIALS and counts in the login lockout
 * (ACCOUNT_LOCKED after LOGIN_MAX_FAILURES), as a login does. Gate does its half at once
 * (src/account/request-deletion.ts: sessions ended, the deletion recorded, the profile deleted)
 * and answers `{error: 0}`; the chat nodes carry out the rest within ACCOUNT_DELETION_POLL_MS.
 * A failure half-way is finished by calling again (the account still logs in until its profile,
 * gate's last step, is gone).
 */
export const accountRoute: FastifyPluginAsync<AccountRouteOptions> = async (
  app,
  { users, status, limiter, accounts, config, hasher },
) => {
  const bodySchema = {
    type: "object",
    properties: { password: passwordSchema(1, config.PASSWORD_MAX_LENGTH) },
    required: ["password"],
    additionalProperties: false,
  } as const;

  app.delete<{ Body: { password: string } }>(
    "/v1/account",
    { schema: { body: bodySchema, response: replies(okReplySchema) } },
    async (request) => {
      const uid = await callerOf(status, request);
      const user = await users.byUid(uid);
      if (!user) throw new AppError(ErrorCode.TOKEN_INVALID, "no such user");
      // The login's own failure counter: guesses here and at /v1/login share one budget.
      const failures = `login:fail:${uid}`;
      const attempt = await limiter.hit(failures, config.LOGIN_MAX_FAILURES, config.LOGIN_LOCKOUT_SECONDS);
      if (!attempt.allowed) {
        throw new AppError(
          ErrorCode.ACCOUNT_LOCKED,
          `too many wrong passwords; retry in ${attempt.retryAfterSeconds} s`,
        );
      }
      if (!(await hasher.verify(request.body.password, user.passwordHash)))
        throw new AppError(ErrorCode.BAD_CREDENTIALS);
      await limiter.reset(failures);
      await accounts.request(uid);
      return { error: ErrorCode.OK };
    },
  );
};

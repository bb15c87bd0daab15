import type { FastifyPluginAsync } from "fastify";
import { botLoginRefused, isBotAccount } from "../../bots/account.js";
import { AppError, ErrorCode, okOrThrow } from "../../errors.js";
import { isValidEmail, normalizeEmail } from "../../verify/email.js";
import type { GateDeps } from "../deps.js";
import type { PasswordHasher } from "../password-hasher.js";
import { emailSchema, okReplySchema, passwordSchema, replies, verifyCodeSchema } from "../schemas.js";

interface ResetBody {
  email: string;
  password: string;
  code: string;
}

export const resetPasswordRoute: FastifyPluginAsync<
  Pick<GateDeps, "users" | "verify" | "status" | "config"> & { hasher: PasswordHasher }
> = async (app, { users, verify, status, config, hasher }) => {
  const bodySchema = {
    type: "object",
    properties: {
      email: emailSchema,
      password: passwordSchema(config.PASSWORD_MIN_LENGTH, config.PASSWORD_MAX_LENGTH),
      code: verifyCodeSchema,
    },
    required: ["email", "password", "code"],
  };

  app.post<{ Body: ResetBody }>(
    "/v1/reset-password",
    { schema: { body: bodySchema, response: replies(okReplySchema) } },
    async (request) => {
      const email = normalizeEmail(request.body.email);
      if (!isValidEmail(email)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "bad email");
      // The code comes first: only the mailbox's owner learns whether an account exists.
      okOrThrow(await verify.consumeVerifyCode({ email, code: request.body.code, checkOnly: false }));
      const user = await users.byEmail(email);
      if (!user) throw new AppError(ErrorCode.BAD_CREDENTIALS);
      // A bot's account never gets a password (its mail domain receives none anyway).
      if (isBotAccount(user)) throw botLoginRefused();
      await users.setPassword(user.uid, await hasher.hash(request.body.password));
      // Whoever held the old password loses what it opened: every token, every session.
      okOrThrow(await status.revokeTokens({ uid: user.uid, token: "", all: true }, { requestId: request.id }));
      return { error: ErrorCode.OK };
    },
  );
};

import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../../errors.js";
import { isValidEmail, normalizeEmail } from "../../verify/email.js";
import type { GateDeps } from "../deps.js";
import { hashPassword } from "../password.js";
import { okReplySchema, replies, verifyCodeSchema } from "../schemas.js";

interface ResetBody {
  email: string;
  password: string;
  code: string;
}

export const resetPasswordRoute: FastifyPluginAsync<Pick<GateDeps, "users" | "verify" | "config">> = async (
  app,
  { users, verify, config },
) => {
  const bodySchema = {
    type: "object",
    properties: {
      email: { type: "string" },
      password: { type: "string", minLength: config.PASSWORD_MIN_LENGTH },
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
      await users.setPassword(user.uid, await hashPassword(request.body.password));
      return { error: ErrorCode.OK };
    },
  );
};

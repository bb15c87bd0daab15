import type { FastifyPluginAsync } from "fastify";
import { AppError, ErrorCode, okOrThrow } from "../../errors.js";
import { USER_NAME_MAX } from "../../ids/identifiers.js";
import { isValidEmail, normalizeEmail } from "../../verify/email.js";
import type { GateDeps } from "../deps.js";
import type { PasswordHasher } from "../password-hasher.js";
import { emailSchema, passwordSchema, replies, verifyCodeSchema } from "../schemas.js";

interface RegisterBody {
  user: string;
  email: string;
  password: string;
  code: string;
}

const registerReplySchema = {
  type: "object",
  properties: { error: { type: "integer" }, uid: { type: "string" } },
  required: ["error", "uid"],
} as const;

export const registerRoute: FastifyPluginAsync<
  Pick<GateDeps, "users" | "verify" | "ids" | "config"> & { hasher: PasswordHasher }
> = async (app, { users, verify, ids, config, hasher }) => {
  const bodySchema = {
    type: "object",
    properties: {
      user: { type: "string", pattern: `^[A-Za-z0-9_]{3,${USER_NAME_MAX}}$` },
      email: emailSchema,
      password: passwordSchema(config.PASSWORD_MIN_LENGTH, config.PASSWORD_MAX_LENGTH),
      code: verifyCodeSchema,
    },
    required: ["user", "email", "password", "code"],
  };

  app.post<{ Body: RegisterBody }>(
    "/v1/register",
    { schema: { body: bodySchema, response: replies(registerReplySchema) } },
    async (request) => {
      const { user: name, password, code } = request.body;
      const email = normalizeEmail(request.body.email);
      if (!isValidEmail(email)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "bad email");

      // The code first: without the mailbox, nobody learns whether a name or email is taken.
      // Only checked, so a taken name does not cost the user their code; spent after.
      okOrThrow(await verify.consumeVerifyCode({ email, code, checkOnly: true }));
      if (await users.byName(name)) throw new AppError(ErrorCode.USER_EXISTS);
      if (await users.byEmail(email)) throw new AppError(ErrorCode.EMAIL_EXISTS);
      okOrThrow(await verify.consumeVerifyCode({ email, code, checkOnly: false }));

      const uid = ids.next();
      // create() still answers USER_EXISTS / EMAIL_EXISTS if another register won the race.
      await users.create({ uid, name, email, passwordHash: await hasher.hash(password), createdAt: Date.now() });
      return { error: ErrorCode.OK, uid };
    },
  );
};

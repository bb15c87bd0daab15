import type { FastifyPluginAsync } from "fastify";
import { httpStatusOf } from "../../errors.js";
import type { GateDeps } from "../deps.js";
import { emailSchema, replies } from "../schemas.js";

/** Also the shape of a 429, which tells the client when it may ask again. */
const verifyCodeReplySchema = {
  type: "object",
  properties: {
    error: { type: "integer" },
    message: { type: "string" },
    retryAfterSeconds: { type: "integer" },
  },
  required: ["error"],
} as const;

const bodySchema = {
  type: "object",
  properties: { email: emailSchema },
  required: ["email"],
} as const;

export const verifyCodeRoute: FastifyPluginAsync<Pick<GateDeps, "verify">> = async (app, { verify }) => {
  app.post<{ Body: { email: string } }>(
    "/v1/verify-code",
    { schema: { body: bodySchema, response: replies(verifyCodeReplySchema, { 429: verifyCodeReplySchema }) } },
    async (request, reply) => {
      const answer = await verify.getVerifyCode(
        { email: request.body.email, clientAddr: request.ip },
        { requestId: request.id },
      );
      return reply.code(httpStatusOf(answer.error)).send(answer);
    },
  );
};

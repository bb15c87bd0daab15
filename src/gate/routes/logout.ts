import type { FastifyPluginAsync } from "fastify";
import { ErrorCode, okOrThrow } from "../../errors.js";
import { callerOf, tokenOf } from "../auth.js";
import type { GateDeps } from "../deps.js";
import { replies } from "../schemas.js";

const bodySchema = {
  type: "object",
  properties: { all: { type: "boolean" } },
  additionalProperties: false,
} as const;

const logoutReplySchema = {
  type: "object",
  properties: { error: { type: "integer" }, revoked: { type: "integer" } },
  required: ["error", "revoked"],
} as const;

/**
 * POST /v1/logout (`Authorization: Bearer <token>`, `X-Uid`): revokes this token, or with
 * `{"all": true}` every token of the user, and ends the sessions they opened (status kicks them
 * on their chat node, TOKEN_INVALID).
 */
export const logoutRoute: FastifyPluginAsync<Pick<GateDeps, "status">> = async (app, { status }) => {
  app.post<{ Body: { all?: boolean } | undefined }>(
    "/v1/logout",
    { schema: { body: bodySchema, response: replies(logoutReplySchema) } },
    async (request) => {
      const uid = await callerOf(status, request);
      const all = request.body?.all === true;
      const answer = okOrThrow(
        await status.revokeTokens({ uid, token: tokenOf(request) ?? "", all }, { requestId: request.id }),
      );
      return { error: ErrorCode.OK, revoked: answer.revoked };
    },
  );
};

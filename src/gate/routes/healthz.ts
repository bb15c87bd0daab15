import type { FastifyPluginAsync } from "fastify";
import { ErrorCode } from "../../errors.js";
import { okReplySchema, replies } from "../schemas.js";

export const healthzRoute: FastifyPluginAsync = async (app) => {
  app.get("/healthz", { schema: { response: replies(okReplySchema) } }, async () => ({ error: ErrorCode.OK }));
};

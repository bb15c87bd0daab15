import type { FastifyPluginAsync } from "fastify";
import { ErrorCode } from "../../errors.js";
import { okReplySchema, replies } from "../schemas.js";

/**
 * /healthz on gate's public port: the process answers (what a load balancer asks). /readyz
 * names internal addresses and /metrics shows the inside of the service: both are on the ops
 * server only (METRICS_HOST:METRICS_PORT, loopback by default), as on every other service.
 */
export const healthzRoute: FastifyPluginAsync = async (app) => {
  app.get("/healthz", { schema: { response: replies(okReplySchema) } }, async () => ({ error: ErrorCode.OK }));
};

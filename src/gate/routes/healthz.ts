import type { FastifyPluginAsync } from "fastify";
import { ErrorCode } from "../../errors.js";
import { type Probe, readiness } from "../../metrics/health.js";
import type { Metrics } from "../../metrics/metrics.js";
import { okReplySchema, replies } from "../schemas.js";

export interface HealthRouteOptions {
  metrics: Metrics;
  probes: Probe[];
  probeTimeoutMs: number;
}

/** /healthz: the process answers. /readyz: its dependencies answer too. /metrics: Prometheus text. */
export const healthzRoute: FastifyPluginAsync<HealthRouteOptions> = async (
  app,
  { metrics, probes, probeTimeoutMs },
) => {
  app.get("/healthz", { schema: { response: replies(okReplySchema) } }, async () => ({ error: ErrorCode.OK }));
  app.get("/readyz", async (_request, reply) => {
    const result = await readiness(probes, probeTimeoutMs);
    return reply
      .code(result.ready ? 200 : 503)
      .send({ error: result.ready ? ErrorCode.OK : ErrorCode.UNAVAILABLE, ...result });
  });
  app.get("/metrics", async (_request, reply) =>
    reply.header("content-type", metrics.registry.contentType).send(await metrics.registry.metrics()),
  );
};

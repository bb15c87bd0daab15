import type { Server } from "@grpc/grpc-js";
import type { Config } from "../config/settings.js";
import { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import { type Api, addApi, startGrpcServer } from "../grpc/api.js";
import { internalTlsOf } from "../grpc/tls.js";
import type { Logger } from "../log/logger.js";
import type { Mailer } from "../mail/ports.js";
import type { Probe } from "../metrics/health.js";
import { createMetrics, type Metrics } from "../metrics/metrics.js";
import { startConfiguredOpsServer } from "../metrics/ops-server.js";
import type { RateLimiter, VerifyCodeStore } from "../routing/ports.js";
import type { Tracing } from "../tracing/ports.js";
import { createVerifyService } from "./service.js";

export interface VerifyHandle {
  port: number;
  /** The same service, for callers in this process (no gRPC hop). */
  api: Api<typeof VerifyServiceService>;
  /** The /metrics, /healthz, /readyz port (METRICS_PORT set), else undefined. */
  opsPort: number | undefined;
  close(): Promise<void>;
}

/** Serves verify on config.VERIFY_ADDR over the given ports. The caller owns them. */
export async function startVerify(deps: {
  config: Config;
  log: Logger;
  codes: VerifyCodeStore;
  limiter: RateLimiter;
  mailer: Mailer;
  metrics?: Metrics;
  /** What /readyz asks (Redis, the SMTP server). */
  probes?: Probe[];
  /** Server spans of traced calls (TRACING_OTLP_URL); off when absent. */
  tracing?: Tracing;
}): Promise<VerifyHandle> {
  const { config, log, codes, limiter, mailer } = deps;
  const api = createVerifyService({ codes, limiter, mailer, config, log });
  const register = (server: Server) => addApi(server, VerifyServiceService, api, {}, deps.tracing);
  const grpc = await startGrpcServer(config.VERIFY_ADDR, register, {
    authToken: config.INTERNAL_AUTH_TOKEN,
    tls: internalTlsOf(config),
  });
  const ops = await startConfiguredOpsServer(config, {
    metrics: deps.metrics ?? createMetrics("verify"),
    probes: deps.probes ?? [],
    log,
  }).catch(async (err: unknown) => {
    await grpc.close();
    throw err;
  });
  return {
    port: grpc.port,
    api,
    opsPort: ops?.port,
    close: async () => {
      await Promise.all([grpc.close(), ops?.close()]);
    },
  };
}

import type { Server } from "@grpc/grpc-js";
import type { Config } from "../config/settings.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { addApi, startGrpcServer } from "../grpc/api.js";
import { internalTlsOf } from "../grpc/tls.js";
import type { Logger } from "../log/logger.js";
import type { Probe } from "../metrics/health.js";
import { createMetrics, type Metrics } from "../metrics/metrics.js";
import { startConfiguredOpsServer } from "../metrics/ops-server.js";
import type { NodeRegistry, TokenStore } from "../routing/ports.js";
import type { Tracing } from "../tracing/ports.js";
import { serveNodeAttachments } from "./node-attachments.js";
import { createStatusService, type StatusApi } from "./service.js";
import { grpcSessionKicker } from "./session-kicker.js";

export interface StatusServer {
  port: number;
  /** The same service, for callers in this process (no gRPC hop). */
  api: StatusApi;
  /** The /metrics, /healthz, /readyz port (METRICS_PORT set), else undefined. */
  opsPort: number | undefined;
  close(): Promise<void>;
}

/** The status service on a gRPC server: its unary calls and the nodes' attach streams. */
export function addStatusService(
  server: Server,
  api: StatusApi,
  deps: { registry: Pick<NodeRegistry, "live">; probeTimeoutMs: number; log: Logger; tracing?: Tracing },
): void {
  const attachNode = serveNodeAttachments({ ...deps, leave: (request) => api.leaveNode(request) });
  addApi(server, StatusServiceService, api, { attachNode }, deps.tracing);
}

/**
 * Serves the status service on config.STATUS_ADDR (port 0 picks a free one) over the given
 * registry and token store. The caller owns them.
 */
export async function startStatus(deps: {
  config: Config;
  log: Logger;
  registry: NodeRegistry;
  tokens: TokenStore;
  metrics?: Metrics;
  /** What /readyz asks (Redis). */
  probes?: Probe[];
  /** Server spans of traced calls, and the kicks they make (TRACING_OTLP_URL); off when absent. */
  tracing?: Tracing;
}): Promise<StatusServer> {
  const { config, log, registry, tokens, tracing } = deps;
  const tls = internalTlsOf(config);
  // A revoked token's sessions are ended on their chat node, over the nodes' own gRPC.
  const kicker = grpcSessionKicker({ authToken: config.INTERNAL_AUTH_TOKEN, tls, tracing });
  const api = createStatusService({ registry, tokens, config, log, kick: kicker.kick });
  const grpc = await startGrpcServer(
    config.STATUS_ADDR,
    (server) => addStatusService(server, api, { registry, probeTimeoutMs: config.NODE_PROBE_TIMEOUT_MS, log, tracing }),
    { authToken: config.INTERNAL_AUTH_TOKEN, tls },
  );
  const ops = await startConfiguredOpsServer(config, {
    metrics: deps.metrics ?? createMetrics("status"),
    probes: deps.probes ?? [],
    log,
  }).catch(async (err: unknown) => {
    await grpc.close();
    throw err;
  });
  log.info({ addr: config.STATUS_ADDR, port: grpc.port, opsPort: ops?.port }, "status listening");
  return {
    port: grpc.port,
    api,
    opsPort: ops?.port,
    close: async () => {
      kicker.close();
      await Promise.all([grpc.close(), ops?.close()]);
    },
  };
}

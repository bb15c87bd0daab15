import type { AddressInfo } from "node:net";
import { createMetrics } from "../metrics/metrics.js";
import { startConfiguredOpsServer } from "../metrics/ops-server.js";
import { buildGateApp, type GateDeps } from "./app.js";

export interface GateHandle {
  port: number;
  /** The /metrics, /healthz, /readyz port (METRICS_PORT set), else undefined. */
  opsPort: number | undefined;
  close(): Promise<void>;
}

/**
 * gate listening on GATE_HOST:GATE_PORT (port 0 picks a free one), and its ops server on
 * METRICS_HOST:METRICS_PORT when that is set. The caller owns the deps.
 */
export async function startGate(deps: GateDeps): Promise<GateHandle> {
  const metrics = deps.metrics ?? createMetrics("gate");
  const app = await buildGateApp({ ...deps, metrics });
  await app.listen({ host: deps.config.GATE_HOST, port: deps.config.GATE_PORT });
  const { port } = app.server.address() as AddressInfo;
  const ops = await startConfiguredOpsServer(deps.config, {
    metrics,
    probes: deps.probes ?? [],
    log: deps.log,
  }).catch(async (err: unknown) => {
    await app.close();
    throw err;
  });
  return {
    port,
    opsPort: ops?.port,
    close: async () => {
      await ops?.close();
      await app.close();
    },
  };
}

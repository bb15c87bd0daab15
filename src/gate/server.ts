import type { AddressInfo } from "node:net";
import { buildGateApp, type GateDeps } from "./app.js";

export interface GateHandle {
  port: number;
  close(): Promise<void>;
}

/** gate listening on GATE_HOST:GATE_PORT (port 0 picks a free one). The caller owns the deps. */
export async function startGate(deps: GateDeps): Promise<GateHandle> {
  const app = await buildGateApp(deps);
  await app.listen({ host: deps.config.GATE_HOST, port: deps.config.GATE_PORT });
  const { port } = app.server.address() as AddressInfo;
  return { port, close: () => app.close() };
}

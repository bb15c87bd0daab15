import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { createMetrics } from "../metrics/metrics.js";
import { runService } from "../shutdown.js";
import { startStatus } from "./server.js";

await runService({
  name: "status",
  check: (config) => requireSharedRouting(config, "status"),
  async start({ config, log, onStop }) {
    const metrics = createMetrics("status");
    const adapters = createRoutingAdapters(config, metrics);
    onStop(() => adapters.close());
    const server = await startStatus({
      config,
      log,
      registry: adapters.nodes,
      tokens: adapters.tokens,
      metrics,
      probes: adapters.probes,
    });
    onStop(() => server.close());
  },
});

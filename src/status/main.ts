import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { createMetrics } from "../metrics/metrics.js";
import { runService } from "../shutdown.js";
import { createTracing } from "../tracing/create.js";
import { startStatus } from "./server.js";

await runService({
  name: "status",
  check: (config) => requireSharedRouting(config, "status"),
  async start({ config, log, onStop }) {
    // Closed last: it exports the spans of everything closed before it.
    const tracing = await createTracing(config, { service: "shardchat-status" }, log);
    onStop(() => tracing.close());
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
      tracing,
    });
    onStop(() => server.close());
  },
});

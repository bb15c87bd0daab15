import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { createLogger } from "../log/logger.js";
import { createMetrics } from "../metrics/metrics.js";
import { stopOnSignal } from "../shutdown.js";
import { startStatus } from "./server.js";

let config: Config;
try {
  config = loadConfig();
  requireSharedRouting(config, "status");
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}
const log = createLogger("status", config.LOG_LEVEL);

try {
  const metrics = createMetrics("status");
  const adapters = createRoutingAdapters(config, metrics);
  try {
    const server = await startStatus({
      config,
      log,
      registry: adapters.nodes,
      tokens: adapters.tokens,
      metrics,
      probes: adapters.probes,
    });
    stopOnSignal({
      name: "status",
      log,
      timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      stop: async () => {
        await server.close();
        await adapters.close();
      },
    });
  } catch (err) {
    await adapters.close();
    throw err;
  }
} catch (err) {
  log.fatal({ err }, "status failed to start");
  process.exit(1);
}

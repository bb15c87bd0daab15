import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { createLogger } from "../log/logger.js";
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
  const adapters = createRoutingAdapters(config);
  try {
    const server = await startStatus({ config, log, registry: adapters.nodes, tokens: adapters.tokens });
    let closing = false;
    const shutdown = async (signal: string) => {
      if (closing) return;
      closing = true;
      log.info({ signal }, "status stopping");
      await server.close();
      await adapters.close();
      process.exit(0);
    };
    process.once("SIGTERM", () => void shutdown("SIGTERM"));
    process.once("SIGINT", () => void shutdown("SIGINT"));
  } catch (err) {
    await adapters.close();
    throw err;
  }
} catch (err) {
  log.fatal({ err }, "status failed to start");
  process.exit(1);
}

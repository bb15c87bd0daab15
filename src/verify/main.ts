import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { createLogger } from "../log/logger.js";
import { createMailer } from "../mail/create-mailer.js";
import { startVerify } from "./server.js";

let config: Config;
try {
  config = loadConfig();
  requireSharedRouting(config, "verify");
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}
const log = createLogger("verify", config.LOG_LEVEL);

async function main(): Promise<void> {
  const adapters = createRoutingAdapters(config);
  let verify: Awaited<ReturnType<typeof startVerify>>;
  try {
    verify = await startVerify({
      config,
      log,
      codes: adapters.codes,
      limiter: adapters.limiter,
      mailer: createMailer(config, log),
    });
  } catch (err) {
    await adapters.close();
    throw err;
  }
  log.info({ addr: config.VERIFY_ADDR, port: verify.port, mail: config.SMTP_URL ? "smtp" : "log" }, "verify listening");

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "verify closing");
    await verify.close();
    await adapters.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "verify failed to start");
  process.exit(1);
});

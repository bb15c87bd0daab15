import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { createLogger } from "../log/logger.js";
import { createMailer } from "../mail/create-mailer.js";
import { type Probe, tcpProbe } from "../metrics/health.js";
import { createMetrics } from "../metrics/metrics.js";
import { stopOnSignal } from "../shutdown.js";
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
  const metrics = createMetrics("verify");
  const adapters = createRoutingAdapters(config, metrics);
  const probes: Probe[] = [...adapters.probes];
  if (config.SMTP_URL) {
    const smtp = new URL(config.SMTP_URL);
    probes.push(tcpProbe("smtp", `${smtp.hostname}:${smtp.port || (smtp.protocol === "smtps:" ? 465 : 587)}`));
  }
  let verify: Awaited<ReturnType<typeof startVerify>>;
  try {
    verify = await startVerify({
      config,
      log,
      codes: adapters.codes,
      limiter: adapters.limiter,
      mailer: createMailer(config, log),
      metrics,
      probes,
    });
  } catch (err) {
    await adapters.close();
    throw err;
  }
  log.info(
    { addr: config.VERIFY_ADDR, port: verify.port, opsPort: verify.opsPort, mail: config.SMTP_URL ? "smtp" : "log" },
    "verify listening",
  );

  stopOnSignal({
    name: "verify",
    log,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    stop: async () => {
      await verify.close();
      await adapters.close();
    },
  });
}

main().catch((err: unknown) => {
  log.fatal({ err }, "verify failed to start");
  process.exit(1);
});

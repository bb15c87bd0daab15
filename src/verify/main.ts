import { createRoutingAdapters, requireSharedRouting } from "../compose.js";
import { createMailer } from "../mail/create-mailer.js";
import { type Probe, tcpProbe } from "../metrics/health.js";
import { createMetrics } from "../metrics/metrics.js";
import { runService } from "../shutdown.js";
import { createTracing } from "../tracing/create.js";
import { startVerify } from "./server.js";

await runService({
  name: "verify",
  check: (config) => requireSharedRouting(config, "verify"),
  async start({ config, log, onStop }) {
    // Closed last: it exports the spans of everything closed before it.
    const tracing = await createTracing(config, { service: "shardchat-verify" }, log);
    onStop(() => tracing.close());
    const metrics = createMetrics("verify");
    const adapters = createRoutingAdapters(config, metrics);
    onStop(() => adapters.close());
    const probes: Probe[] = [...adapters.probes];
    if (config.SMTP_URL) {
      const smtp = new URL(config.SMTP_URL);
      probes.push(tcpProbe("smtp", `${smtp.hostname}:${smtp.port || (smtp.protocol === "smtps:" ? 465 : 587)}`));
    }
    const verify = await startVerify({
      config,
      log,
      codes: adapters.codes,
      limiter: adapters.limiter,
      mailer: createMailer(config, log),
      metrics,
      probes,
      tracing,
    });
    onStop(() => verify.close());
    log.info(
      { addr: config.VERIFY_ADDR, port: verify.port, opsPort: verify.opsPort, mail: config.SMTP_URL ? "smtp" : "log" },
      "verify listening",
    );
  },
});

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { type Probe, readiness } from "./health.js";
import type { Metrics } from "./metrics.js";

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The small HTTP server of a service without one of its own (verify, status, chat node):
 * GET /metrics (Prometheus text, with shardchat_dependency_up from the probes run at that
 * moment), /healthz (the process runs) and /readyz (200 only while every probe answers, else
 * 503 with which did not).
 */
export async function startOpsServer(deps: {
  host: string;
  port: number;
  metrics: Metrics;
  probes: Probe[];
  probeTimeoutMs: number;
  log: Logger;
}): Promise<OpsServer> {
  const { metrics, probes, probeTimeoutMs, log } = deps;
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const answer = (status: number, type: string, body: string) => {
      res.writeHead(status, { "content-type": type });
      res.end(body);
    };
    if (req.method !== "GET") return answer(405, "text/plain", "GET only\n");
    if (path === "/healthz") return answer(200, "application/json", '{"ok":true}\n');
    if (path === "/readyz") {
      void readiness(probes, probeTimeoutMs).then((r) =>
        answer(r.ready ? 200 : 503, "application/json", `${JSON.stringify(r)}\n`),
      );
      return;
    }
    if (path === "/metrics") {
      // The probes run at scrape time, so dependency health costs nothing between scrapes.
      readiness(probes, probeTimeoutMs)
        .then((r) => {
          for (const check of r.checks) metrics.dependencyUp.set({ dependency: check.name }, check.ok ? 1 : 0);
          return metrics.registry.metrics();
        })
        .then(
          (text) => answer(200, metrics.registry.contentType, text),
          (err: unknown) => {
            log.warn({ err }, "cannot render metrics");
            answer(500, "text/plain", "metrics failed\n");
          },
        );
      return;
    }
    answer(404, "text/plain", "not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(deps.port, deps.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The ops server on the service's METRICS_HOST:METRICS_PORT, or none when METRICS_PORT is unset. */
export async function startConfiguredOpsServer(
  config: Pick<Config, "METRICS_HOST" | "METRICS_PORT" | "READY_PROBE_TIMEOUT_MS">,
  deps: { metrics: Metrics; probes: Probe[]; log: Logger },
): Promise<OpsServer | undefined> {
  if (config.METRICS_PORT === null) return undefined;
  return startOpsServer({
    host: config.METRICS_HOST,
    port: config.METRICS_PORT,
    probeTimeoutMs: config.READY_PROBE_TIMEOUT_MS,
    ...deps,
  });
}

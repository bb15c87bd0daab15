import { hostname } from "node:os";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { noTracing, type Tracing } from "./ports.js";

export type TracingSettings = Pick<
  Config,
  "TRACING_OTLP_URL" | "TRACING_SAMPLE_RATIO" | "TRACING_EXPORT_INTERVAL_MS" | "TRACING_QUEUE_MAX"
>;

/** Who exports the spans: "shardchat-gate", and the instance (a chat node's id; else host and pid). */
export interface TraceIdentity {
  service: string;
  instance?: string;
}

/**
 * The tracing a process uses: OpenTelemetry exporting to TRACING_OTLP_URL, or, with it empty,
 * noTracing, and then the SDK is never imported. Close it last (it exports what ended).
 */
export async function createTracing(config: TracingSettings, identity: TraceIdentity, log: Logger): Promise<Tracing> {
  const url = config.TRACING_OTLP_URL;
  if (url === "") return noTracing;
  const { OtelTracing } = await import("./otel.js");
  const instance = identity.instance ?? `${hostname()}/${process.pid}`;
  log.info({ url, sampleRatio: config.TRACING_SAMPLE_RATIO, service: identity.service, instance }, "tracing on");
  return new OtelTracing({
    url,
    sampleRatio: config.TRACING_SAMPLE_RATIO,
    exportIntervalMs: config.TRACING_EXPORT_INTERVAL_MS,
    queueMax: config.TRACING_QUEUE_MAX,
    service: identity.service,
    instance,
    log,
  });
}

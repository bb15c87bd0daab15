import { createRequire } from "node:module";
import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";
import type { Config } from "../config/settings.js";

export type { Logger };

/** LOG_FORMAT: auto is pretty on a terminal and JSON lines anywhere else (files, pipes, collectors). */
export type LogFormat = "auto" | "json" | "pretty";

export interface LogOutput {
  format?: LogFormat;
  /** Hot-path lines (see `sampled`) repeated within this many ms are counted, not written; 0 writes all. */
  sampleMs?: number;
  /** Where the lines go; stdout when absent. */
  stream?: NodeJS.WriteStream;
}

/** The output the settings ask for (LOG_FORMAT, LOG_SAMPLE_MS), on stdout. */
export function logOutputOf(config: Pick<Config, "LOG_FORMAT" | "LOG_SAMPLE_MS">): LogOutput {
  return { format: config.LOG_FORMAT, sampleMs: config.LOG_SAMPLE_MS };
}

const SAMPLED = Symbol("sampled");

/**
 * Marks the fields of a log line that can repeat per message or per request (a failure every
 * send meets while Redis or a shard is down): the logger writes the first such line of the same
 * level and text, then at most one per LOG_SAMPLE_MS, with `suppressed`: how many it dropped.
 */
export function sampled<T extends object>(fields: T): T {
  return Object.assign(fields, { [SAMPLED]: true });
}

/** The one logger: pino, one child per service, JSON lines or (on a terminal) pretty and coloured. */
export function createLogger(service: string, level: string, output: LogOutput = {}): Logger {
  const stream = output.stream ?? process.stdout;
  const options: LoggerOptions = {
    level,
    base: { service, pid: process.pid },
    hooks: { logMethod: sampler(output.sampleMs ?? 0) },
  };
  const pretty = wantsPretty(output.format ?? "json", stream) ? prettyStream(stream) : undefined;
  if (pretty) return pino(options, pretty);
  return output.stream ? pino(options, output.stream) : pino(options);
}

function wantsPretty(format: LogFormat, stream: NodeJS.WriteStream): boolean {
  return format === "pretty" || (format === "auto" && stream.isTTY === true);
}

/**
 * pino-pretty in this thread, synchronous, so the last line before an exit is on the screen.
 * It is a dev dependency: an image built without it (npm ci --omit=dev) writes JSON instead.
 */
function prettyStream(stream: NodeJS.WriteStream): DestinationStream | undefined {
  let pinoPretty: typeof import("pino-pretty");
  try {
    pinoPretty = createRequire(import.meta.url)("pino-pretty");
  } catch {
    return undefined;
  }
  return pinoPretty({
    // NO_COLOR (no-color.org) is honoured; a terminal otherwise gets colours even when not asked.
    colorize: stream.isTTY === true && !process.env.NO_COLOR,
    destination: stream,
    sync: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname",
  });
}

type LogMethodHook = NonNullable<NonNullable<LoggerOptions["hooks"]>["logMethod"]>;

/** pino's logMethod hook that thins out the lines marked `sampled`, per level and text. */
function sampler(everyMs: number): LogMethodHook {
  const last = new Map<string, { at: number; suppressed: number }>();
  return function (this: Logger, args, method, level) {
    const [fields, text] = args as unknown[];
    const marked = everyMs > 0 && typeof fields === "object" && fields !== null && SAMPLED in fields;
    if (!marked) return method.apply(this, args);
    const key = `${level} ${String(text)}`;
    const now = Date.now();
    const seen = last.get(key);
    if (seen && now - seen.at < everyMs) {
      seen.suppressed++;
      return;
    }
    last.set(key, { at: now, suppressed: 0 });
    if (!seen || seen.suppressed === 0) return method.apply(this, args);
    const rest = (args as unknown[]).slice(1);
    return method.apply(this, [{ ...fields, suppressed: seen.suppressed }, ...rest] as Parameters<typeof method>);
  };
}

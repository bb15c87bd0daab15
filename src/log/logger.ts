import { type Logger, pino } from "pino";

export type { Logger };

/** The one logger: pino, JSON lines to stdout, one child per service. */
export function createLogger(service: string, level: string): Logger {
  return pino({ level, base: { service, pid: process.pid } });
}

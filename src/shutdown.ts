import { ConfigError, loadConfig } from "./config/load.js";
import type { Config } from "./config/settings.js";
import { createLogger, type Logger, logOutputOf } from "./log/logger.js";

/**
 * Stops the process on SIGTERM or SIGINT: runs `stop` (close listeners, hand over sessions,
 * release leases, close pools), then exits. A stop that hangs (a keep-alive client that never
 * goes, a database that stopped answering) must not keep the process and its port: after
 * `timeoutMs` it exits anyway, so a supervisor can start the next one.
 */
export function stopOnSignal(deps: { name: string; log: Logger; timeoutMs: number; stop: () => Promise<void> }): void {
  const { name, log, timeoutMs, stop } = deps;
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, `${name} stopping`);
    setTimeout(() => {
      log.warn({ timeoutMs }, `${name} did not stop in time; exiting`);
      process.exit(1);
    }, timeoutMs).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, `${name} failed to stop cleanly`);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
}

/** What a service's start gives runService: its settings, its logger, and where to hand its closers. */
export interface ServiceStart {
  config: Config;
  log: Logger;
  /** Registers a close; closes run in reverse order of registration, on a signal or a failed start. */
  onStop(close: () => Promise<void> | void): void;
}

/**
 * The start-up and shutdown every service's main.ts shares. Loads the settings (a bad one: its
 * message on stderr, exit 2), checks them with `check`, makes the logger, runs `start`; what
 * `start` registered with onStop is closed in reverse order on SIGTERM or SIGINT (stopOnSignal:
 * at most `timeoutMs`), or at once when `start` fails (exit 1).
 */
export async function runService(service: {
  /** The logger's `service` field ("gate", "chat"). */
  name: string;
  /** How log lines call it ("chat node"); `name` when absent. */
  label?: string;
  check?: (config: Config) => void;
  /** A line printed under a bad setting's message (where the settings are described). */
  configHint?: string;
  timeoutMs?: (config: Config) => number;
  start: (s: ServiceStart) => Promise<void>;
}): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
    service.check?.(config);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(service.configHint ? `${err.message}\n${service.configHint}` : err.message);
    process.exit(2);
  }
  const label = service.label ?? service.name;
  const log = createLogger(service.name, config.LOG_LEVEL, logOutputOf(config));
  const closers: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      await Promise.resolve()
        .then(close)
        .catch((err: unknown) => log.warn({ err }, `${label}: a close failed`));
    }
  };
  try {
    await service.start({ config, log, onStop: (close) => closers.push(close) });
  } catch (err) {
    log.fatal({ err }, `${label} failed to start`);
    await closeAll();
    process.exit(1);
  }
  stopOnSignal({
    name: label,
    log,
    timeoutMs: service.timeoutMs?.(config) ?? config.SHUTDOWN_TIMEOUT_MS,
    stop: closeAll,
  });
}

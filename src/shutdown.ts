import type { Logger } from "./log/logger.js";

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

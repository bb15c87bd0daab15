import type { Logger } from "../log/logger.js";
import type { JobLocks } from "./ports.js";

/** What a pass over one instance tells; `ran` is false where another process held the lease. */
export interface InstanceReport {
  instance: string;
  ran: boolean;
}

/** What the work over one instance gets while it holds the lease. */
export interface InstanceLease {
  /** Extends the lease by one interval: a long pass keeps it, so no other process starts the same work. */
  renew(): Promise<void>;
  /** Whether stop() was called: the work ends at its next step. */
  readonly stopping: boolean;
}

export interface LeasedInstanceJobOptions<R extends InstanceReport> {
  /** For the logs: "retention" gives "retention pass failed". */
  name: string;
  /** Each instance's lease in JobLocks is `<lockPrefix>:<instance>`. */
  lockPrefix: string;
  /** Between passes, and how long a lease lasts. */
  intervalMs: number;
  /** The database instances, asked at every pass (the shard map may change). */
  instances(): string[];
  /** Absent: every pass runs (a process that knows it is alone, and tests). */
  locks?: JobLocks;
  log: Logger;
  /** A report of nothing done yet, with `ran` false. */
  report(instance: string): R;
  /** The work on one instance under its lease; it fills `report` as it goes, so a failure keeps what was done. */
  work(instance: string, report: R, lease: InstanceLease): Promise<void>;
  /** After every pass this process took the lease for, or failed to ask for it (logs, metrics). */
  finish?(report: R, seconds: number): void;
}

/**
 * A background job of every chat node process that runs every interval over each database
 * instance in turn, on an instance only while it holds that instance's lease, so that one
 * process at a time does the work of an instance (the retention purge, account deletions).
 * A lease is held for one interval and not given back at the end: it also spaces the passes
 * over an instance across every process that runs the job.
 */
export class LeasedInstanceJob<R extends InstanceReport> {
  readonly #options: LeasedInstanceJobOptions<R>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;

  constructor(options: LeasedInstanceJobOptions<R>) {
    this.#options = options;
  }

  get stopping(): boolean {
    return this.#stopped;
  }

  /** Passes every interval from now on (the first after one interval). */
  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  /** No pass starts after this; resolves once the one under way (if any) ends its current step. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** One pass over every instance, one after another. */
  async runOnce(): Promise<R[]> {
    const pass = (async () => {
      const reports: R[] = [];
      for (const instance of this.#options.instances()) {
        if (this.#stopped) break;
        reports.push(await this.#passOver(instance));
      }
      return reports;
    })();
    this.#running = pass;
    try {
      return await pass;
    } finally {
      if (this.#running === pass) this.#running = undefined;
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    const { log, name, intervalMs } = this.#options;
    this.#timer = setTimeout(() => {
      this.runOnce()
        .catch((err: unknown) => log.warn({ err }, `${name} pass failed`))
        .finally(() => this.#schedule());
    }, intervalMs);
    this.#timer.unref();
  }

  async #passOver(instance: string): Promise<R> {
    const { locks, log, name, intervalMs } = this.#options;
    const started = process.hrtime.bigint();
    const report = this.#options.report(instance);
    const key = `${this.#options.lockPrefix}:${instance}`;
    try {
      const token = locks ? await locks.acquire(key, intervalMs) : "";
      if (token === null) return report;
      report.ran = true;
      const stopping = () => this.#stopped;
      const lease: InstanceLease = {
        async renew() {
          if (token) await locks?.renew(key, token, intervalMs);
        },
        get stopping() {
          return stopping();
        },
      };
      await this.#options.work(instance, report, lease);
    } catch (err) {
      log.warn({ err, instance }, `${name} pass over an instance failed; the next pass goes on`);
    }
    this.#options.finish?.(report, Number(process.hrtime.bigint() - started) / 1e9);
    return report;
  }
}

import type { Config } from "../../config/settings.js";
import { AppError, ErrorCode } from "../../errors.js";
import type { Logger } from "../../log/logger.js";
import type { Metrics } from "../../metrics/metrics.js";
import type { JobLocks } from "../../routing/ports.js";
import type { RetentionStore } from "../ports.js";

export type RetentionSettings = Pick<
  Config,
  "MESSAGE_TTL_SECONDS" | "RETENTION_PURGE_INTERVAL_MS" | "RETENTION_PURGE_BATCH" | "RETENTION_PURGE_CONVERSATIONS_PAGE"
>;

export interface RetentionPurgerOptions {
  store: RetentionStore;
  settings: RetentionSettings;
  log: Logger;
  metrics?: Pick<Metrics, "retentionPurged" | "retentionPassSeconds">;
  /**
   * Who may purge an instance this interval: every chat node process runs a purger, and the one
   * that takes the instance's lease does the pass (see the README's "Retention"). Absent: every
   * pass runs (a process that knows it is alone, and tests).
   */
  locks?: JobLocks;
  /** Milliseconds since the epoch (tests move it). */
  now?: () => number;
}

/** What one pass over one instance did. */
export interface PassReport {
  instance: string;
  /** Whether this purger held the instance's lease (false: another process purges it now). */
  ran: boolean;
  /** Conversations that lost messages, and how many messages went. */
  conversations: number;
  rows: number;
  /** Conversations left for the next pass: their slot is moving (a rebalance), or a purge failed. */
  skipped: number;
  seconds: number;
}

/**
 * The retention purge: every RETENTION_PURGE_INTERVAL_MS, on each database instance, pages
 * through the conversations with expired messages (RetentionStore.expiredConversations,
 * RETENTION_PURGE_CONVERSATIONS_PAGE at a time) and purges each, RETENTION_PURGE_BATCH messages
 * per transaction, until nothing expired is left there: many short transactions, never a long
 * one, so appends to the same conversation wait at most one batch. A conversation whose slot a
 * rebalance is moving answers SLOT_MOVING and is skipped: it is purged on its new instance by
 * the next pass. With MESSAGE_TTL_SECONDS=0 and no group with a TTL of its own, a pass is one
 * empty index read per instance.
 */
export class RetentionPurger {
  readonly #store: RetentionStore;
  readonly #settings: RetentionSettings;
  readonly #log: Logger;
  readonly #metrics: RetentionPurgerOptions["metrics"];
  readonly #locks: JobLocks | undefined;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;

  constructor(options: RetentionPurgerOptions) {
    this.#store = options.store;
    this.#settings = options.settings;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#locks = options.locks;
    this.#now = options.now ?? Date.now;
  }

  /** Passes every RETENTION_PURGE_INTERVAL_MS from now on (the first after one interval). */
  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  /** No pass starts after this; resolves once the one under way (if any) ends its current batch. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** One pass over every instance, one instance after another. */
  async runOnce(): Promise<PassReport[]> {
    const pass = (async () => {
      const reports: PassReport[] = [];
      for (const instance of this.#store.instances()) {
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
    this.#timer = setTimeout(() => {
      this.runOnce()
        .catch((err: unknown) => this.#log.warn({ err }, "retention pass failed"))
        .finally(() => this.#schedule());
    }, this.#settings.RETENTION_PURGE_INTERVAL_MS);
    this.#timer.unref();
  }

  async #passOver(instance: string): Promise<PassReport> {
    const started = process.hrtime.bigint();
    const report: PassReport = { instance, ran: false, conversations: 0, rows: 0, skipped: 0, seconds: 0 };
    const leaseMs = this.#settings.RETENTION_PURGE_INTERVAL_MS;
    const key = `retention:${instance}`;
    try {
      // The lease is not given back at the end: held for one interval, it also spaces the
      // passes over this instance across every process that runs a purger.
      const token = this.#locks ? await this.#locks.acquire(key, leaseMs) : "";
      if (token === null) return report;
      report.ran = true;
      const defaultTtl = this.#settings.MESSAGE_TTL_SECONDS;
      let after: string | null = "";
      while (after !== null && !this.#stopped) {
        const page: Awaited<ReturnType<RetentionStore["expiredConversations"]>> =
          await this.#store.expiredConversations(
            instance,
            after,
            this.#settings.RETENTION_PURGE_CONVERSATIONS_PAGE,
            this.#now(),
            defaultTtl,
          );
        for (const { convId, cutoffMs } of page.conversations) {
          if (this.#stopped) break;
          const rows = await this.#purgeConversation(convId, cutoffMs);
          if (rows === null) report.skipped++;
          else if (rows > 0) {
            report.conversations++;
            report.rows += rows;
          }
        }
        // A long pass keeps its lease, so no other process starts the same pass meanwhile.
        if (token) await this.#locks?.renew(key, token, leaseMs);
        after = page.next;
      }
    } catch (err) {
      this.#log.warn({ err, instance }, "retention pass over an instance failed; the next pass goes on");
    }
    report.seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (report.ran) {
      this.#metrics?.retentionPassSeconds.set({ instance }, report.seconds);
      const done = { ...report };
      if (report.rows > 0 || report.skipped > 0) this.#log.info(done, "retention pass");
      else this.#log.debug(done, "retention pass: nothing expired");
    }
    return report;
  }

  /** Batches until nothing expired is left: messages deleted, or null when skipped for this pass. */
  async #purgeConversation(convId: string, cutoffMs: number): Promise<number | null> {
    const batch = this.#settings.RETENTION_PURGE_BATCH;
    let total = 0;
    try {
      for (;;) {
        const rows = await this.#store.purge(convId, cutoffMs, batch);
        total += rows;
        this.#metrics?.retentionPurged.inc(rows);
        // Fewer than a batch: the expired prefix ended inside it.
        if (rows < batch || this.#stopped) return total;
      }
    } catch (err) {
      if (err instanceof AppError && err.code === ErrorCode.SLOT_MOVING) {
        this.#log.debug({ convId }, "retention: slot moving, purged on its new instance next pass");
      } else {
        this.#log.warn({ err, convId }, "retention: purge failed, tried again next pass");
      }
      return null;
    }
  }
}

import type { Config } from "../../config/settings.js";
import { AppError, ErrorCode } from "../../errors.js";
import type { Logger } from "../../log/logger.js";
import type { Metrics } from "../../metrics/metrics.js";
import { type InstanceLease, type InstanceReport, LeasedInstanceJob } from "../../routing/leased-instance-job.js";
import type { JobLocks } from "../../routing/ports.js";
import type { FileMetaStore, RetentionStore } from "../ports.js";

export type RetentionSettings = Pick<
  Config,
  "MESSAGE_TTL_SECONDS" | "RETENTION_PURGE_INTERVAL_MS" | "RETENTION_PURGE_BATCH" | "RETENTION_PURGE_CONVERSATIONS_PAGE"
>;

export interface RetentionPurgerOptions {
  store: RetentionStore;
  /**
   * Where the purged messages' files are released (gate's sweep then deletes them); absent,
   * they stay stored.
   */
  files?: Pick<FileMetaStore, "release">;
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

/** What one pass over one instance did (`ran`: whether this purger held the instance's lease). */
export interface PassReport extends InstanceReport {
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
  readonly #files: RetentionPurgerOptions["files"];
  readonly #settings: RetentionSettings;
  readonly #log: Logger;
  readonly #metrics: RetentionPurgerOptions["metrics"];
  readonly #now: () => number;
  readonly #job: LeasedInstanceJob<PassReport>;

  constructor(options: RetentionPurgerOptions) {
    this.#store = options.store;
    this.#files = options.files;
    this.#settings = options.settings;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#now = options.now ?? Date.now;
    this.#job = new LeasedInstanceJob({
      name: "retention",
      lockPrefix: "retention",
      intervalMs: options.settings.RETENTION_PURGE_INTERVAL_MS,
      instances: () => options.store.instances(),
      locks: options.locks,
      log: options.log,
      report: (instance) => ({ instance, ran: false, conversations: 0, rows: 0, skipped: 0, seconds: 0 }),
      work: (instance, report, lease) => this.#purgeInstance(instance, report, lease),
      finish: (report, seconds) => this.#finish(report, seconds),
    });
  }

  /** Passes every RETENTION_PURGE_INTERVAL_MS from now on (the first after one interval). */
  start(): void {
    this.#job.start();
  }

  /** No pass starts after this; resolves once the one under way (if any) ends its current batch. */
  stop(): Promise<void> {
    return this.#job.stop();
  }

  /** One pass over every instance, one instance after another. */
  runOnce(): Promise<PassReport[]> {
    return this.#job.runOnce();
  }

  async #purgeInstance(instance: string, report: PassReport, lease: InstanceLease): Promise<void> {
    const defaultTtl = this.#settings.MESSAGE_TTL_SECONDS;
    let after: string | null = "";
    while (after !== null && !lease.stopping) {
      const page: Awaited<ReturnType<RetentionStore["expiredConversations"]>> = await this.#store.expiredConversations(
        instance,
        after,
        this.#settings.RETENTION_PURGE_CONVERSATIONS_PAGE,
        this.#now(),
        defaultTtl,
      );
      for (const { convId, cutoffMs } of page.conversations) {
        if (lease.stopping) break;
        const rows = await this.#purgeConversation(convId, cutoffMs);
        if (rows === null) report.skipped++;
        else if (rows > 0) {
          report.conversations++;
          report.rows += rows;
        }
      }
      await lease.renew();
      after = page.next;
    }
  }

  #finish(report: PassReport, seconds: number): void {
    report.seconds = seconds;
    if (!report.ran) return;
    this.#metrics?.retentionPassSeconds.set({ instance: report.instance }, report.seconds);
    const done = { ...report };
    if (report.rows > 0 || report.skipped > 0) this.#log.info(done, "retention pass");
    else this.#log.debug(done, "retention pass: nothing expired");
  }

  /**
   * The purged messages' files, after the purge's commit (the files rows are on other shards):
   * one that fails stays stored, as does one the purger stops before releasing.
   */
  async #release(fileIds: string[]): Promise<void> {
    const files = this.#files;
    if (!files) return;
    const now = this.#now();
    for (const id of fileIds) {
      await files.release(id, now).catch((err: unknown) => this.#log.warn({ err, id }, "retention: file not released"));
    }
  }

  /** Batches until nothing expired is left: messages deleted, or null when skipped for this pass. */
  async #purgeConversation(convId: string, cutoffMs: number): Promise<number | null> {
    const batch = this.#settings.RETENTION_PURGE_BATCH;
    let total = 0;
    try {
      for (;;) {
        const purged = await this.#store.purge(convId, cutoffMs, batch);
        total += purged.messages;
        this.#metrics?.retentionPurged.inc(purged.messages);
        await this.#release(purged.files);
        // Fewer than a batch: the expired prefix ended inside it.
        if (purged.messages < batch || this.#job.stopping) return total;
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

import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import type { JobLocks } from "../routing/ports.js";
import type { AccountDeletionStore, Uid } from "../storage/ports.js";
import type { DeletedAccountCleanup } from "./clean-up-deleted-account.js";

export type AccountDeletionWorkerSettings = Pick<Config, "ACCOUNT_DELETION_POLL_MS">;

export interface AccountDeletionWorkerOptions {
  store: AccountDeletionStore;
  cleanup: Pick<DeletedAccountCleanup, "cleanUp">;
  settings: AccountDeletionWorkerSettings;
  log: Logger;
  /**
   * Who may carry out an instance's requests this interval: every chat node process runs a
   * worker, and the one that takes the instance's lease does the pass, as for the retention
   * purge. Absent: every pass runs (a process that knows it is alone, and tests).
   */
  locks?: JobLocks;
  /**
   * Called with a deleted uid when its request is taken and again once it is done: the process
   * forgets the uid in its chat nodes' KnownUsers, so they stop taking sends and invitations to
   * it at once (other processes' nodes forget it within CHAT_KNOWN_USERS_TTL_MS).
   */
  forget?: (uid: Uid) => void;
}

/** What one pass over one instance did. */
export interface DeletionPassReport {
  instance: string;
  /** Whether this worker held the instance's lease (false: another process has it now). */
  ran: boolean;
  /** Requests carried out (and their rows deleted), and requests that failed (kept for the next pass). */
  done: number;
  failed: number;
}

/** Requests read at a time. */
const PAGE = 100;

/**
 * The chat nodes' account deletion worker (issue 17): every ACCOUNT_DELETION_POLL_MS, on each
 * database instance, under that instance's lease (`account-deletion:<instance>` in JobLocks),
 * it pages through the requests gate recorded in account_deletions and, for each, runs the
 * cleanup (DeletedAccountCleanup: messages with erase_messages, friendships, applications,
 * groups, blocks), then deletes the row. A request that fails stays for the next pass, which
 * runs its cleanup again (idempotent: it skips what is done); the others go on meanwhile.
 */
export class AccountDeletionWorker {
  readonly #options: AccountDeletionWorkerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  #stopped = false;

  constructor(options: AccountDeletionWorkerOptions) {
    this.#options = options;
  }

  /** Passes every ACCOUNT_DELETION_POLL_MS from now on (the first after one interval). */
  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  /** No pass starts after this; resolves once the one under way (if any) ends its current request. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** One pass over every instance, one after another. */
  async runOnce(): Promise<DeletionPassReport[]> {
    const pass = (async () => {
      const reports: DeletionPassReport[] = [];
      for (const instance of this.#options.store.instances()) {
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
        .catch((err: unknown) => this.#options.log.warn({ err }, "account deletion pass failed"))
        .finally(() => this.#schedule());
    }, this.#options.settings.ACCOUNT_DELETION_POLL_MS);
    this.#timer.unref();
  }

  async #passOver(instance: string): Promise<DeletionPassReport> {
    const { store, cleanup, locks, log, forget } = this.#options;
    const report: DeletionPassReport = { instance, ran: false, done: 0, failed: 0 };
    const leaseMs = this.#options.settings.ACCOUNT_DELETION_POLL_MS;
    const key = `account-deletion:${instance}`;
    try {
      // Held for one interval and not given back, as the purge's: it also spaces the passes
      // over this instance across every process that runs a worker.
      const token = locks ? await locks.acquire(key, leaseMs) : "";
      if (token === null) return report;
      report.ran = true;
      let after: Uid | null = "0";
      while (after !== null && !this.#stopped) {
        const page: Awaited<ReturnType<AccountDeletionStore["pending"]>> = await store.pending(instance, after, PAGE);
        for (const deletion of page.deletions) {
          if (this.#stopped) break;
          try {
            forget?.(deletion.uid);
            await cleanup.cleanUp(deletion.uid, { eraseMessages: deletion.eraseMessages });
            await store.done(deletion.uid, deletion.requestedAt);
            // Again: a send may have read the uid while gate was still deleting its profile.
            forget?.(deletion.uid);
            report.done++;
          } catch (err) {
            report.failed++;
            log.warn({ err, uid: deletion.uid }, "account deletion failed; tried again next pass");
          }
          // A long pass keeps its lease, so no other process starts the same requests meanwhile.
          if (token) await locks?.renew(key, token, leaseMs);
        }
        after = page.next;
      }
    } catch (err) {
      log.warn({ err, instance }, "account deletion pass over an instance failed; the next pass goes on");
    }
    if (report.done > 0 || report.failed > 0) log.info(report, "account deletion pass");
    return report;
  }
}

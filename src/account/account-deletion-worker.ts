import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { type InstanceLease, type InstanceReport, LeasedInstanceJob } from "../routing/leased-instance-job.js";
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

/** What one pass over one instance did (`ran`: whether this worker held the instance's lease). */
export interface DeletionPassReport extends InstanceReport {
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
  readonly #job: LeasedInstanceJob<DeletionPassReport>;

  constructor(options: AccountDeletionWorkerOptions) {
    this.#options = options;
    this.#job = new LeasedInstanceJob({
      name: "account deletion",
      lockPrefix: "account-deletion",
      intervalMs: options.settings.ACCOUNT_DELETION_POLL_MS,
      instances: () => options.store.instances(),
      locks: options.locks,
      log: options.log,
      report: (instance) => ({ instance, ran: false, done: 0, failed: 0 }),
      work: (instance, report, lease) => this.#carryOut(instance, report, lease),
      finish: (report) => {
        if (report.done > 0 || report.failed > 0) options.log.info(report, "account deletion pass");
      },
    });
  }

  /** Passes every ACCOUNT_DELETION_POLL_MS from now on (the first after one interval). */
  start(): void {
    this.#job.start();
  }

  /** No pass starts after this; resolves once the one under way (if any) ends its current request. */
  stop(): Promise<void> {
    return this.#job.stop();
  }

  /** One pass over every instance, one after another. */
  runOnce(): Promise<DeletionPassReport[]> {
    return this.#job.runOnce();
  }

  async #carryOut(instance: string, report: DeletionPassReport, lease: InstanceLease): Promise<void> {
    const { store, cleanup, log, forget } = this.#options;
    let after: Uid | null = "0";
    while (after !== null && !lease.stopping) {
      const page: Awaited<ReturnType<AccountDeletionStore["pending"]>> = await store.pending(instance, after, PAGE);
      for (const deletion of page.deletions) {
        if (lease.stopping) break;
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
        await lease.renew();
      }
      after = page.next;
    }
  }
}

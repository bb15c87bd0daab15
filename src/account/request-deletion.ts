import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import type { AccountDeletionStore, PushDeviceStore, Uid, UserStore } from "../storage/ports.js";

/** What gate's half of an account deletion needs: narrow slices of the ports, so a test can hand in its own. */
export interface AccountDeletionRequestPorts {
  /** Revokes every login token of uid and ends its sessions on every node (status.revokeTokens all). */
  revokeSessions(uid: Uid): Promise<void>;
  /** Gate's own tables only (src/storage/mysql/grants.ts): the request row and the profile. */
  deletions: Pick<AccountDeletionStore, "request">;
  users: Pick<UserStore, "delete">;
  /** The user's push devices (issue 18), gate's table too: they go with the account. */
  pushDevices?: Pick<PushDeviceStore, "unregisterAll">;
  settings: Pick<Config, "ACCOUNT_DELETE_MESSAGES">;
  log: Logger;
  /** Milliseconds since the epoch (tests move it). */
  now?: () => number;
}

/**
 * Gate's half of deleting an account (DELETE /v1/account, issue 17): what gate may do with its
 * own tables, at once. Its sessions end (every token revoked, which kicks every session), the
 * deletion is recorded in account_deletions for the chat nodes, and the profile goes (the users
 * row, sharded also its name and email index rows): the name and email can register again and
 * the uid no longer logs in. The rest (friendships, applications, groups, blocks and, with
 * ACCOUNT_DELETE_MESSAGES=erase, messages) is the chat nodes' half, DeletedAccountCleanup in
 * ./clean-up-deleted-account.ts, run by their AccountDeletionWorker within
 * ACCOUNT_DELETION_POLL_MS: gate's database user may not touch those tables (SECURITY.md).
 *
 * Idempotent and safe to retry: every step only does what is still to do.
 */
export class AccountDeletionRequest {
  readonly #now: () => number;

  constructor(private readonly ports: AccountDeletionRequestPorts) {
    this.#now = ports.now ?? Date.now;
  }

  async request(uid: Uid): Promise<void> {
    const { deletions, users, settings, log } = this.ports;
    // Sessions first: nothing the user does from here on races the deletion.
    await this.ports.revokeSessions(uid);
    // Its push registrations (personal data: endpoints, tokens) while the profile still lets a
    // failure be retried.
    await this.ports.pushDevices?.unregisterAll(uid);
    // The request row before the profile goes. The profile is what lets the user log in and
    // call again: while it is there, a failure at any step is retried by calling DELETE again.
    // Once it is gone nobody can call again, so the row must already be there, or the uid's
    // friendships, groups and messages would never be cleaned up. A failure between the two
    // leaves the row and the profile: the chat nodes clean up anyway, and a retry deletes the
    // profile (and records the request again, which is harmless: the cleanup is idempotent).
    await deletions.request(uid, this.#now(), settings.ACCOUNT_DELETE_MESSAGES === "erase");
    await users.delete(uid);
    log.info({ uid, eraseMessages: settings.ACCOUNT_DELETE_MESSAGES === "erase" }, "account deletion requested");
  }
}

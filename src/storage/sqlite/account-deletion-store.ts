import { ErrorCode } from "../../errors.js";
import type { AccountDeletionRecord, AccountDeletionStore, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

/** The one instance's id (AccountDeletionStore.instances). */
const INSTANCE = "sqlite";

/** Account deletion requests in the SQLite file: the same account_deletions rows as MySQL. */
export class SqliteAccountDeletionStore implements AccountDeletionStore {
  readonly #request;
  readonly #page;
  readonly #done;

  constructor(db: SqliteDatabase) {
    this.#request = db.prepare<[string, number, number]>(
      `INSERT INTO account_deletions (uid, requested_at, erase_messages) VALUES (?, ?, ?)
       ON CONFLICT (uid) DO UPDATE SET requested_at = excluded.requested_at,
         erase_messages = MAX(erase_messages, excluded.erase_messages)`,
    );
    // Uids are canonical decimal TEXT: by length, then text, is numeric order.
    this.#page = db.prepare<
      [string, string, string, number],
      { uid: Uid; requested_at: number; erase_messages: number }
    >(
      `SELECT uid, requested_at, erase_messages FROM account_deletions
        WHERE length(uid) > length(?) OR (length(uid) = length(?) AND uid > ?)
        ORDER BY length(uid), uid LIMIT ?`,
    );
    this.#done = db.prepare<[string, number]>("DELETE FROM account_deletions WHERE uid = ? AND requested_at = ?");
  }

  async request(uid: Uid, atMs: number, eraseMessages: boolean): Promise<void> {
    const key = requireCanonicalId(uid);
    run(() => this.#request.run(key, atMs, eraseMessages ? 1 : 0));
  }

  instances(): string[] {
    return [INSTANCE];
  }

  async pending(
    _instance: string,
    after: Uid,
    limit: number,
  ): Promise<{ deletions: AccountDeletionRecord[]; next: Uid | null }> {
    const max = Math.max(1, Math.floor(limit));
    const from = canonicalId(after) ?? "0";
    const rows = run(() => this.#page.all(from, from, from, max));
    const deletions = rows.map((r) => ({
      uid: r.uid,
      requestedAt: Number(r.requested_at),
      eraseMessages: Number(r.erase_messages) !== 0,
    }));
    const last = rows.at(-1);
    return { deletions, next: rows.length < max || !last ? null : last.uid };
  }

  async done(uid: Uid, requestedAt: number): Promise<boolean> {
    const key = canonicalId(uid);
    if (key === null) return false;
    return run(() => this.#done.run(key, requestedAt).changes > 0);
  }
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite account deletions", work);
}

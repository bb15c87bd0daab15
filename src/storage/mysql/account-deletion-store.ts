import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import type { AccountDeletionRecord, AccountDeletionStore, Uid } from "../ports.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";
import { uidKey } from "./uid-key.js";

/**
 * Account deletion requests in MySQL (see AccountDeletionStore): one account_deletions row on
 * the uid's instance, each write one statement there (sharded: behind the uid's slot fence).
 */
export class MysqlAccountDeletionStore implements AccountDeletionStore {
  constructor(private readonly placement: KeyPlacement) {}

  /** One upsert: a second request takes its time and keeps erase once asked. */
  async request(uid: Uid, atMs: number, eraseMessages: boolean): Promise<void> {
    const key = uidKey(uid);
    await this.call("account deletion request", () =>
      this.placement.write(key, (db) =>
        db.query(
          `INSERT INTO account_deletions (uid, requested_at, erase_messages) VALUES (?, ?, ?)
           ON DUPLICATE KEY UPDATE requested_at = VALUES(requested_at),
             erase_messages = GREATEST(erase_messages, VALUES(erase_messages))`,
          [key, atMs, eraseMessages ? 1 : 0],
        ),
      ),
    );
  }

  instances(): string[] {
    return this.placement.instances();
  }

  /** One primary-key range on the instance. */
  async pending(
    instance: string,
    after: Uid,
    limit: number,
  ): Promise<{ deletions: AccountDeletionRecord[]; next: Uid | null }> {
    const max = Math.max(1, Math.floor(limit));
    const from = isDecimalId(after) ? uidKey(after) : "0";
    const [rows] = await this.call(`account deletions on ${instance}`, () =>
      this.placement
        .pool(instance)
        .query<RowDataPacket[]>(
          "SELECT uid, requested_at, erase_messages FROM account_deletions WHERE uid > ? ORDER BY uid LIMIT ?",
          [from, max],
        ),
    );
    const deletions = rows
      .map((r) => ({
        uid: storedId(r.uid),
        requestedAt: Number(r.requested_at),
        eraseMessages: Number(r.erase_messages) !== 0,
      }))
      .filter((d) => this.placement.instanceOf(d.uid) === instance);
    const last = rows.at(-1);
    return { deletions, next: rows.length < max || !last ? null : storedId(last.uid) };
  }

  /** One DELETE of the row, while it still holds that request. */
  async done(uid: Uid, requestedAt: number): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    const key = uidKey(uid);
    const [result] = await this.call("account deletion done", () =>
      this.placement.write(key, (db) =>
        db.query<ResultSetHeader>("DELETE FROM account_deletions WHERE uid = ? AND requested_at = ?", [
          key,
          requestedAt,
        ]),
      ),
    );
    return result.affectedRows > 0;
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

import { ErrorCode } from "../../errors.js";
import { importHistoryIn, importUsersIn } from "../mysql/bulk-import.js";
import { indexEntries } from "../mysql/conversation-index.js";
import { mysqlCall } from "../mysql/errors.js";
import { retryingDeadlocks } from "../mysql/transaction.js";
import { insertIndexRows } from "../mysql/user-index.js";
import type { BulkImporter, ImportedConversation, Uid, UserRecord } from "../ports.js";
import type { Shards } from "./shards.js";
import { EMAILS, NAMES, type UniqueIndex } from "./user-store.js";

/**
 * BulkImporter over shards: each member's user_conversations entries on the member's shard
 * first (as a live append writes them), then each conversation's history on its own shard, one
 * transaction per instance behind the slot fence; the instances are written at once.
 */
export class ShardedBulkImporter implements BulkImporter {
  /** deadlockRetries: config.MYSQL_DEADLOCK_RETRIES (a batch that loses one is run again whole). */
  constructor(
    private readonly shards: Shards,
    private readonly deadlockRetries = 5,
  ) {}

  /**
   * The name and email index rows first, each on the shard its fold picks, then the users rows
   * on their uids' shards, as ShardedUserStore.create writes them (one statement per shard and
   * table, the shards at once).
   */
  importUsers(users: UserRecord[]): Promise<void> {
    return this.shards.retryingFences(async () => {
      const now = Date.now();
      const records = users.map((u) => ({ ...u, email: u.email.trim().toLowerCase() }));
      const claim = async (index: UniqueIndex, columnOf: (u: UserRecord) => string) => {
        const byShard = new Map<string, { key: string; value: string; uid: Uid }[]>();
        for (const u of records) {
          const key = index.placement(columnOf(u));
          push(byShard, this.shards.instanceFor(key).id, { key, value: columnOf(u), uid: u.uid });
        }
        await Promise.all(
          [...byShard].map(([id, own]) =>
            this.write(
              id,
              own.map((o) => o.key),
              (conn) => insertIndexRows(conn, index, own, now),
            ),
          ),
        );
      };
      await claim(NAMES, (u) => u.name);
      await claim(EMAILS, (u) => u.email);
      const byShard = new Map<string, UserRecord[]>();
      for (const u of records) push(byShard, this.shards.instanceFor(u.uid).id, u);
      await Promise.all(
        [...byShard].map(([id, own]) =>
          this.write(
            id,
            own.map((u) => u.uid),
            (conn) => importUsersIn(conn, own),
          ),
        ),
      );
    });
  }

  importHistory(batch: ImportedConversation[]): Promise<void> {
    return this.shards.retryingFences(async () => {
      const now = Date.now();
      const entries = new Map<string, { uid: Uid; convId: string }[]>();
      for (const c of batch) {
        for (const uid of new Set(c.members)) push(entries, this.shards.instanceFor(uid).id, { uid, convId: c.convId });
      }
      await Promise.all(
        [...entries].map(([id, own]) =>
          this.write(
            id,
            own.map((e) => e.uid),
            (conn) => indexEntries(conn, own, now),
          ),
        ),
      );
      const convs = new Map<string, ImportedConversation[]>();
      for (const c of batch) push(convs, this.shards.instanceFor(c.convId).id, c);
      await Promise.all(
        [...convs].map(([id, own]) =>
          this.write(
            id,
            own.map((c) => c.convId),
            (conn) => importHistoryIn(conn, own, now),
          ),
        ),
      );
    });
  }

  private write(id: string, keys: string[], work: Parameters<Shards["write"]>[2]): Promise<unknown> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, `history import on ${id}`, () =>
      retryingDeadlocks(this.deadlockRetries, () => this.shards.write(id, keys, work)),
    );
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

import { ErrorCode } from "../../errors.js";
import { indexEntries } from "../mysql/conversation-index.js";
import { mysqlCall } from "../mysql/errors.js";
import { DEADLOCK_RETRIES, importHistoryIn } from "../mysql/history-import.js";
import { retryingDeadlocks } from "../mysql/transaction.js";
import type { HistoryImporter, ImportedConversation, Uid } from "../ports.js";
import type { Shards } from "./shards.js";

/**
 * HistoryImporter over shards: each member's user_conversations entries on the member's shard
 * first (as a live append writes them), then each conversation's history on its own shard, one
 * transaction per instance behind the slot fence; the instances are written at once.
 */
export class ShardedHistoryImporter implements HistoryImporter {
  constructor(private readonly shards: Shards) {}

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
      retryingDeadlocks(DEADLOCK_RETRIES, () => this.shards.write(id, keys, work)),
    );
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

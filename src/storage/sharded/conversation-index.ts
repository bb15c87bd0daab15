import { ErrorCode } from "../../errors.js";
import {
  indexConversation,
  indexedConversations,
  unindexConversation,
  unindexConversations,
} from "../mysql/conversation-index.js";
import { mysqlCall } from "../mysql/errors.js";
import type { Connection } from "../mysql/timeouts.js";
import type { Uid } from "../ports.js";
import type { Shards } from "./shards.js";

/**
 * The user_conversations index over shards: each user's entries on that user's shard, written
 * behind the slot fence (Shards.write) like every other row, so a rebalance cannot lose them.
 */
export class ShardedConversationIndex {
  constructor(private readonly shards: Shards) {}

  /** The user's conversations (those starting with `prefix` when given), from the user's shard. */
  conversationsOf(uid: Uid, prefix?: string): Promise<string[]> {
    const home = this.shards.instanceFor(uid).id;
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, `conversation index on ${home}`, () =>
      indexedConversations(this.shards.pool(home), uid, prefix),
    );
  }

  /** Lists convId for each of uids: one multi-row insert per uid shard. */
  async add(convId: string, uids: Iterable<Uid>): Promise<void> {
    const now = Date.now();
    await this.#onEachUidShard(uids, (conn, own) => indexConversation(conn, own, convId, now));
  }

  /** Unlists convId for each of uids: one delete per uid shard. */
  async removeAll(convId: string, uids: Iterable<Uid>): Promise<void> {
    await this.#onEachUidShard(uids, (conn, own) => unindexConversations(conn, own, convId));
  }

  remove(convId: string, uid: Uid): Promise<void> {
    const home = this.shards.instanceFor(uid).id;
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, `conversation index on ${home}`, () =>
      this.shards.write(home, [uid], (conn) => unindexConversation(conn, uid, convId)),
    );
  }

  /** `write` on each shard holding some of uids (deduplicated), with those uids, all at once. */
  async #onEachUidShard(uids: Iterable<Uid>, write: (conn: Connection, own: Uid[]) => Promise<void>): Promise<void> {
    const byShard = new Map<string, Uid[]>();
    for (const uid of new Set(uids)) {
      const id = this.shards.instanceFor(uid).id;
      const list = byShard.get(id);
      if (list) list.push(uid);
      else byShard.set(id, [uid]);
    }
    await Promise.all(
      [...byShard].map(([id, own]) =>
        mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, `conversation index on ${id}`, () =>
          this.shards.write(id, own, (conn) => write(conn, own)),
        ),
      ),
    );
  }
}

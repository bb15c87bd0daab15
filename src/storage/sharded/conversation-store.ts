import { isDecimalId } from "../../ids/identifiers.js";
import { MysqlConversationStore } from "../mysql/conversation-store.js";
import type { ConversationStore, ConversationSummaryRecord, Uid } from "../ports.js";
import { ShardedConversationIndex } from "./conversation-index.js";
import type { Shards } from "./shards.js";

/**
 * The conversation list over shards: the user's user_conversations index (on the uid's shard)
 * names the conversations, and only the shards holding them are asked, each for its own newest
 * `limit` (one query by idx_members_uid), then merged. Marking read is one update on the
 * conversation's shard, where its member rows (and their read cursors) live.
 */
export class ShardedConversationStore implements ConversationStore {
  readonly #stores = new Map<string, MysqlConversationStore>();
  readonly #index: ShardedConversationIndex;

  constructor(private readonly shards: Shards) {
    this.#index = new ShardedConversationIndex(shards);
  }

  async list(uid: Uid, limit: number): Promise<ConversationSummaryRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || max === 0) return [];
    const convIds = await this.#index.conversationsOf(uid);
    const shardIds = [...new Set(convIds.map((c) => this.shards.instanceFor(c).id))];
    const pages = await Promise.all(shardIds.map((id) => this.storeOn(id).list(uid, max)));
    return pages
      .flat()
      .sort((a, b) => newestFirst(a.lastMessage?.msgId, b.lastMessage?.msgId) || (a.convId < b.convId ? -1 : 1))
      .slice(0, max);
  }

  markRead(uid: Uid, convId: string, seq: number): Promise<{ readSeq: number; advanced: boolean }> {
    // The instance is resolved on each try: a slot a rebalance moved is written on its new owner.
    return this.shards.retryingFences(() =>
      this.storeOn(this.shards.instanceFor(convId).id).markRead(uid, convId, seq),
    );
  }

  private storeOn(instanceId: string): MysqlConversationStore {
    let store = this.#stores.get(instanceId);
    if (!store) {
      store = new MysqlConversationStore(this.shards.pool(instanceId), (convId, work) =>
        this.shards.write(instanceId, [convId], work),
      );
      this.#stores.set(instanceId, store);
    }
    return store;
  }
}

/** Snowflake ids as BigInt, larger (newer) first; a conversation without a last message last. */
function newestFirst(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? 1 : -1;
  const x = BigInt(a);
  const y = BigInt(b);
  return x === y ? 0 : x > y ? -1 : 1;
}

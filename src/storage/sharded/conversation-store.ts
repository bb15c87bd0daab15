import { isDecimalId } from "../../ids/identifiers.js";
import { type ListedConversation, MysqlConversationStore } from "../mysql/conversation-store.js";
import type { ConversationSettingsRecord, ConversationStore, ConversationSummaryRecord, Uid } from "../ports.js";
import { ShardedConversationIndex } from "./conversation-index.js";
import type { Shards } from "./shards.js";

export interface ShardedConversationStoreOptions {
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries?: number;
}

/**
 * The conversation list over shards: the user's user_conversations index (on the uid's shard)
 * names the conversations, and only the shards holding them are asked, each for its own first
 * `limit` (one query by idx_members_uid), then merged in the same order (pinned first, then
 * the newest). Marking read, settings and clearing history are each one write transaction on
 * the conversation's shard, where its member rows (cursors and settings) live.
 */
export class ShardedConversationStore implements ConversationStore {
  readonly #stores = new Map<string, MysqlConversationStore>();
  readonly #index: ShardedConversationIndex;

  constructor(
    private readonly shards: Shards,
    private readonly options: ShardedConversationStoreOptions = {},
  ) {
    this.#index = new ShardedConversationIndex(shards);
  }

  async list(uid: Uid, limit: number): Promise<ConversationSummaryRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || max === 0) return [];
    const convIds = await this.#index.conversationsOf(uid);
    const shardIds = [...new Set(convIds.map((c) => this.shards.instanceFor(c).id))];
    const pages = await Promise.all(shardIds.map((id) => this.storeOn(id).listed(uid, max)));
    return pages
      .flat()
      .sort(listOrder)
      .slice(0, max)
      .map((c) => c.summary);
  }

  markRead(uid: Uid, convId: string, seq: number): Promise<{ readSeq: number; advanced: boolean }> {
    // The instance is resolved on each try: a slot a rebalance moved is written on its new owner.
    return this.shards.retryingFences(() => this.storeOf(convId).markRead(uid, convId, seq));
  }

  setSettings(
    uid: Uid,
    convId: string,
    patch: Partial<ConversationSettingsRecord>,
  ): Promise<ConversationSettingsRecord> {
    return this.shards.retryingFences(() => this.storeOf(convId).setSettings(uid, convId, patch));
  }

  clearHistory(uid: Uid, convId: string, seq: number): Promise<number> {
    return this.shards.retryingFences(() => this.storeOf(convId).clearHistory(uid, convId, seq));
  }

  private storeOf(convId: string): MysqlConversationStore {
    return this.storeOn(this.shards.instanceFor(typeof convId === "string" ? convId : "").id);
  }

  private storeOn(instanceId: string): MysqlConversationStore {
    let store = this.#stores.get(instanceId);
    if (!store) {
      store = new MysqlConversationStore(
        this.shards.pool(instanceId),
        (convId, work) => this.shards.write(instanceId, [convId], work),
        this.options.deadlockRetries,
      );
      this.#stores.set(instanceId, store);
    }
    return store;
  }
}

/** The order of one shard's page (MysqlConversationStore.listed): pinned first, then the newest, then by id. */
function listOrder(a: ListedConversation, b: ListedConversation): number {
  const pinned = Number(b.summary.settings.pinned) - Number(a.summary.settings.pinned);
  return pinned || newestFirst(a.lastMsgId, b.lastMsgId) || (a.summary.convId < b.summary.convId ? -1 : 1);
}

/** Snowflake ids as BigInt, larger (newer) first; a conversation without a last message last. */
function newestFirst(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? 1 : -1;
  const x = BigInt(a);
  const y = BigInt(b);
  return x === y ? 0 : x > y ? -1 : 1;
}

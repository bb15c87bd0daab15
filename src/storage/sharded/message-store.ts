import { isDecimalId } from "../../ids/identifiers.js";
import type { Logger } from "../../log/logger.js";
import { sampled } from "../../log/logger.js";
import { MysqlMessageStore, type MysqlMessageStoreOptions, validateNewMessage } from "../mysql/message-store.js";
import type {
  ChangeOutcome,
  HistoryQuery,
  MessageChange,
  MessageStore,
  NewMessage,
  StoredMessage,
  Uid,
} from "../ports.js";
import { ShardedConversationIndex } from "./conversation-index.js";
import type { Shards } from "./shards.js";

export interface ShardedMessageStoreOptions {
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries?: number;
  /** config.MYSQL_APPEND_BATCH_MAX, MYSQL_ACK_BATCH_MAX and MYSQL_APPEND_BATCHES_IN_FLIGHT, per shard. */
  batchMax?: number;
  ackBatchMax?: number;
  batchConcurrency?: number;
  /** config.SHARD_KNOWN_CONVERSATIONS. */
  knownConversations?: number;
  observeBatch?: MysqlMessageStoreOptions["observeBatch"];
  log?: Logger;
  /** Webhooks (issue 18): each shard's store writes the after-send rows (MysqlMessageStoreOptions). */
  afterSendOutbox?: boolean;
}

/**
 * Messages over MySQL shards. A conversation (its row, members with their cursors, messages)
 * lives whole on the instance owning slotOf(convId), so append, history and ack of one
 * conversation are one MysqlMessageStore call on one shard, never a cross-shard transaction.
 * The only cross-shard data is user_conversations (on each member's uid shard), written once
 * per conversation before its first member row, which lets pending ask only the shards that
 * hold the user's conversations.
 */
export class ShardedMessageStore implements MessageStore {
  readonly #stores = new Map<string, MysqlMessageStore>();
  readonly #index: ShardedConversationIndex;
  /** Conversations already listed in their members' index (re-listing is idempotent). */
  readonly #indexed = new Set<string>();
  /** Index writes under way, shared by the appends that arrive meanwhile. */
  readonly #indexing = new Map<string, Promise<void>>();
  readonly #knownCap: number;

  constructor(
    private readonly shards: Shards,
    private readonly options: ShardedMessageStoreOptions = {},
  ) {
    this.#knownCap = options.knownConversations ?? 100_000;
    this.#index = new ShardedConversationIndex(shards);
  }

  async append(m: NewMessage): Promise<{ message: StoredMessage; duplicate: boolean }> {
    // The one check of a new message's columns, before it is indexed (INVALID_ARGUMENT); the
    // instance's store is then asked with appendValidated.
    validateNewMessage(m);
    // Each attempt resolves the shard from the current map: a fence means a rebalance is
    // moving the slot, and the retry follows it to the new owner.
    return this.shards.retryingFences(async () => {
      if (!this.#indexed.has(m.convId)) {
        // Appends that meet the same pending index resume in call order, so they still reach
        // the shard's ordered writer in the order they were called.
        let indexing = this.#indexing.get(m.convId);
        if (!indexing) {
          indexing = this.index(m.convId, [m.sender, ...m.members]).finally(() => this.#indexing.delete(m.convId));
          this.#indexing.set(m.convId, indexing);
        }
        await indexing;
      }
      return this.storeOf(m.convId).appendValidated(m);
    });
  }

  async pending(uid: Uid, limit: number): Promise<{ messages: StoredMessage[]; more: boolean }> {
    if (!isDecimalId(uid)) return { messages: [], more: false };
    const convIds = await this.#index.conversationsOf(uid);
    const shardIds = [...new Set(convIds.map((c) => this.shards.instanceFor(c).id))];
    const answers = await Promise.allSettled(shardIds.map((id) => this.storeOn(id).pending(uid, limit)));
    const failed = answers.filter((a) => a.status === "rejected");
    for (const [i, a] of answers.entries()) {
      if (a.status === "rejected")
        this.options.log?.warn(sampled({ err: a.reason, shard: shardIds[i], uid }), "pending: shard down");
    }
    let more = false;
    const messages: StoredMessage[] = [];
    for (const a of answers) {
      if (a.status !== "fulfilled") continue;
      more ||= a.value.more;
      messages.push(...a.value.messages);
    }
    // A shard that is down holds back only its own conversations: the others' messages are
    // answered with more (the client acks them and asks again); once only the shard that is
    // down may hold anything, the answer is its error, never "nothing more", so the client
    // knows its sync is not finished (their cursors did not move: nothing is lost).
    if (failed.length > 0) {
      if (messages.length === 0) throw failed[0]?.reason;
      more = true;
    }
    // Whole conversations in convId order, each in seq order, as one shard answers them;
    // cutting the tail keeps a gap-free prefix of every conversation.
    messages.sort((a, b) => (a.convId < b.convId ? -1 : a.convId > b.convId ? 1 : a.seq - b.seq));
    const max = Math.max(0, Math.floor(limit));
    if (messages.length > max) return { messages: messages.slice(0, max), more: true };
    return { messages, more };
  }

  ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void> {
    // Cursors only move forward (GREATEST), so acking a shard again after a fence is harmless.
    return this.shards.retryingFences(() => this.ackOnce(uid, cursors));
  }

  private async ackOnce(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void> {
    const byShard = new Map<string, { convId: string; seq: number }[]>();
    for (const cursor of cursors) {
      if (typeof cursor?.convId !== "string" || cursor.convId === "") continue;
      const id = this.shards.instanceFor(cursor.convId).id;
      byShard.set(id, [...(byShard.get(id) ?? []), cursor]);
    }
    const answers = await Promise.allSettled([...byShard].map(([id, own]) => this.storeOn(id).ack(uid, own)));
    const failed = answers.find((a) => a.status === "rejected");
    if (failed) throw failed.reason;
  }

  history(uid: Uid, convId: string, query: HistoryQuery): Promise<StoredMessage[]> {
    return this.storeOf(convId).history(uid, convId, query);
  }

  historyPage(uid: Uid, convId: string, query: HistoryQuery): Promise<{ messages: StoredMessage[]; firstSeq: number }> {
    return this.storeOf(convId).historyPage(uid, convId, query);
  }

  /** Asks the conversation's own shard: member rows live beside their conversation. */
  isMember(convId: string, uid: Uid): Promise<boolean> {
    if (typeof convId !== "string" || convId === "") return Promise.resolve(false);
    return this.storeOf(convId).isMember(convId, uid);
  }

  message(uid: Uid, convId: string, seq: number): Promise<StoredMessage | null> {
    return this.storeOf(convId).message(uid, convId, seq);
  }

  /**
   * On the conversation's shard, where its reactions and delete-for-me marks live too. A fenced
   * change rolled back whole, so it is tried again (decide included) on the slot's new owner.
   */
  change(change: MessageChange): Promise<ChangeOutcome> {
    return this.shards.retryingFences(() => this.storeOf(change.convId).change(change));
  }

  hide(uid: Uid, convId: string, seqs: number[]): Promise<void> {
    return this.shards.retryingFences(() => this.storeOf(convId).hide(uid, convId, seqs));
  }

  /** Lists convId in each member's user_conversations (see ShardedConversationIndex). */
  private async index(convId: string, members: Uid[]): Promise<void> {
    await this.#index.add(convId, members);
    // Forgetting is only a cost (one idempotent re-index), so a full set simply starts over.
    if (this.#indexed.size >= this.#knownCap) this.#indexed.clear();
    this.#indexed.add(convId);
  }

  private storeOf(convId: string): MysqlMessageStore {
    return this.storeOn(this.shards.instanceFor(convId).id);
  }

  private storeOn(instanceId: string): MysqlMessageStore {
    let store = this.#stores.get(instanceId);
    if (!store) {
      store = new MysqlMessageStore(this.shards.pool(instanceId), {
        deadlockRetries: this.options.deadlockRetries,
        guard: this.shards.guard,
        fenceCheck: this.shards.fenceCheck,
        batchMax: this.options.batchMax,
        ackBatchMax: this.options.ackBatchMax,
        batchConcurrency: this.options.batchConcurrency,
        observeBatch: this.options.observeBatch,
        afterSendOutbox: this.options.afterSendOutbox,
      });
      this.#stores.set(instanceId, store);
    }
    return store;
  }
}

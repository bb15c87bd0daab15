import { GROUP_CONV_PREFIX, groupConvId, groupIdOfConv, isDecimalId, storedId } from "../../ids/identifiers.js";
import type { Logger } from "../../log/logger.js";
import { MysqlGroupStore, uniqueSorted } from "../mysql/group-store.js";
import type {
  GroupInvitationRecord,
  GroupJoinRequestRecord,
  GroupMemberRecord,
  GroupRecord,
  GroupRoleValue,
  GroupStore,
  NewGroup,
  NewGroupMessage,
  StoredMessage,
  Uid,
} from "../ports.js";
import { ShardedConversationIndex } from "./conversation-index.js";
import type { Shards } from "./shards.js";

export interface ShardedGroupStoreOptions {
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries?: number;
  log?: Logger;
  /** Webhooks (issue 18): each shard's store writes the after-send rows (MysqlGroupStoreOptions). */
  afterSendOutbox?: boolean;
}

/**
 * Groups over MySQL shards. A group lives whole on the instance owning slotOf("g:<groupId>"),
 * beside its conversation, so each operation is one MysqlGroupStore call on one shard. The
 * only cross-shard rows are each member's user_conversations entry (on the member's uid
 * shard), written before the member row as for 1:1 conversations: that is what makes the
 * member's pending() ask the group's shard. Entries of members who left stay behind; they
 * cost one empty lookup and are ignored (no member row).
 */
export class ShardedGroupStore implements GroupStore {
  readonly #stores = new Map<string, MysqlGroupStore>();
  readonly #index: ShardedConversationIndex;

  constructor(
    private readonly shards: Shards,
    private readonly options: ShardedGroupStoreOptions = {},
  ) {
    this.#index = new ShardedConversationIndex(shards);
  }

  async create(g: NewGroup): Promise<GroupRecord> {
    const uids = uniqueSorted([g.owner, ...g.members]);
    if (uids.length <= g.maxMembers && isDecimalId(g.groupId)) await this.index(g.groupId, uids);
    return this.fenced(() => this.storeOf(g.groupId).create(g));
  }

  get(groupId: string): Promise<GroupRecord | null> {
    return this.storeOf(groupId).get(groupId);
  }

  roleOf(groupId: string, uid: Uid): Promise<GroupRoleValue | null> {
    return this.storeOf(groupId).roleOf(groupId, uid);
  }

  members(groupId: string, afterUid: Uid, limit: number): Promise<GroupMemberRecord[]> {
    return this.storeOf(groupId).members(groupId, afterUid, limit);
  }

  memberUids(groupId: string): Promise<Uid[]> {
    return this.storeOf(groupId).memberUids(groupId);
  }

  async addMembers(groupId: string, uids: Uid[], maxMembers: number): Promise<Uid[]> {
    const wanted = uniqueSorted(uids);
    if (wanted.length > 0 && isDecimalId(groupId)) await this.index(groupId, wanted);
    return this.fenced(() => this.storeOf(groupId).addMembers(groupId, wanted, maxMembers));
  }

  async removeMember(groupId: string, uid: Uid): Promise<boolean> {
    const removed = await this.fenced(() => this.storeOf(groupId).removeMember(groupId, uid));
    if (removed) {
      await this.#index
        .remove(groupConvId(groupId), uid)
        .catch((err: unknown) => this.options.log?.warn({ err, uid, groupId }, "stale group index entry left"));
    }
    return removed;
  }

  setRole(groupId: string, uid: Uid, role: GroupRoleValue): Promise<boolean> {
    return this.fenced(() => this.storeOf(groupId).setRole(groupId, uid, role));
  }

  transferOwnership(groupId: string, from: Uid, to: Uid): Promise<boolean> {
    return this.fenced(() => this.storeOf(groupId).transferOwnership(groupId, from, to));
  }

  rename(groupId: string, name: string): Promise<GroupRecord | null> {
    return this.fenced(() => this.storeOf(groupId).rename(groupId, name));
  }

  /**
   * The user's index names candidate groups, in group id order; each group's shard confirms
   * membership (an entry left by a group the user left confirms nothing), a page's worth at a time.
   */
  async groupsOf(uid: Uid, afterGroupId: string, limit: number): Promise<GroupRecord[]> {
    const take = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || !isDecimalId(afterGroupId) || take === 0) return [];
    const after = BigInt(afterGroupId);
    const candidates = (await this.#index.conversationsOf(uid, GROUP_CONV_PREFIX))
      .flatMap((convId) => groupIdOfConv(convId) ?? [])
      .map((id) => BigInt(id))
      .filter((id) => id > after)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      .map(String);
    const found: GroupRecord[] = [];
    for (let from = 0; from < candidates.length && found.length < take; from += take) {
      const byShard = new Map<string, string[]>();
      for (const id of candidates.slice(from, from + take)) {
        const shard = this.shards.instanceFor(groupConvId(id)).id;
        const list = byShard.get(shard);
        if (list) list.push(id);
        else byShard.set(shard, [id]);
      }
      const answers = await Promise.all([...byShard].map(([shard, ids]) => this.storeOn(shard).groupsAmong(uid, ids)));
      found.push(...answers.flat().sort((a, b) => (BigInt(a.groupId) < BigInt(b.groupId) ? -1 : 1)));
    }
    return found.slice(0, take);
  }

  invite(groupId: string, inviter: Uid, uids: Uid[], nowMs: number): Promise<Uid[]> {
    return this.fenced(() => this.storeOf(groupId).invite(groupId, inviter, uids, nowMs));
  }

  /** Invitations live beside their group: every shard is asked, and the pages merged newest first. */
  async invitationsOf(uid: Uid, sinceMs: number, beforeMs: number, limit: number): Promise<GroupInvitationRecord[]> {
    const pages = await Promise.all(
      this.shards.map.instances.map((instance) =>
        this.storeOn(instance.id).invitationsOf(uid, sinceMs, beforeMs, limit),
      ),
    );
    return pages
      .flat()
      .sort((a, b) => b.createdAt - a.createdAt || (BigInt(b.group.groupId) > BigInt(a.group.groupId) ? 1 : -1))
      .slice(0, Math.max(0, Math.floor(limit)));
  }

  /** A joiner is listed in its user_conversations index before its member row, as addMembers does. */
  async answerInvitation(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<GroupRecord | null> {
    const joining =
      answer.accept && isDecimalId(uid) && (await this.storeOf(groupId).hasInvitation(groupId, uid, answer.sinceMs));
    if (joining) await this.index(groupId, [storedId(BigInt(uid))]);
    return this.fenced(() => this.storeOf(groupId).answerInvitation(groupId, uid, answer));
  }

  // ---- Moderation (issue 17): each a call on the group's shard.

  mute(groupId: string, uid: Uid, untilMs: number): Promise<boolean> {
    return this.fenced(() => this.storeOf(groupId).mute(groupId, uid, untilMs));
  }

  setMutedAll(groupId: string, muted: boolean): Promise<GroupRecord | null> {
    return this.fenced(() => this.storeOf(groupId).setMutedAll(groupId, muted));
  }

  announce(groupId: string, text: string, by: Uid, atMs: number): Promise<GroupRecord | null> {
    return this.fenced(() => this.storeOf(groupId).announce(groupId, text, by, atMs));
  }

  setJoinApproval(groupId: string, required: boolean): Promise<GroupRecord | null> {
    return this.fenced(() => this.storeOf(groupId).setJoinApproval(groupId, required));
  }

  /**
   * One transaction on the group's shard. With removeHistory the former members'
   * user_conversations entries go afterwards, best effort (one left behind costs one empty
   * lookup, as a leave's does); with the history kept they stay: they are how the members'
   * pending() and conversation list still find the conversation they read.
   */
  async dissolve(groupId: string, removeHistory: boolean): Promise<Uid[]> {
    const former = await this.fenced(() => this.storeOf(groupId).dissolve(groupId, removeHistory));
    if (removeHistory && former.length > 0) {
      await this.#index
        .removeAll(groupConvId(groupId), former)
        .catch((err: unknown) => this.options.log?.warn({ err, groupId }, "stale group index entries left"));
    }
    return former;
  }

  requestJoin(request: GroupJoinRequestRecord): Promise<void> {
    return this.fenced(() => this.storeOf(request.groupId).requestJoin(request));
  }

  joinRequests(groupId: string, sinceMs: number, limit: number): Promise<GroupJoinRequestRecord[]> {
    return this.storeOf(groupId).joinRequests(groupId, sinceMs, limit);
  }

  /** A joiner is listed in its user_conversations index before its member row, as answerInvitation does. */
  async answerJoin(
    groupId: string,
    uid: Uid,
    answer: { accept: boolean; sinceMs: number; maxMembers: number },
  ): Promise<boolean> {
    const joining =
      answer.accept && isDecimalId(uid) && (await this.storeOf(groupId).hasJoinRequest(groupId, uid, answer.sinceMs));
    if (joining) await this.index(groupId, [storedId(BigInt(uid))]);
    return this.fenced(() => this.storeOf(groupId).answerJoin(groupId, uid, answer));
  }

  managers(groupId: string): Promise<Uid[]> {
    return this.storeOf(groupId).managers(groupId);
  }

  /** Retention (issue 17): on the group's shard. */
  setRetention(groupId: string, ttlSeconds: number): Promise<GroupRecord | null> {
    return this.fenced(() => this.storeOf(groupId).setRetention(groupId, ttlSeconds));
  }

  append(m: NewGroupMessage): Promise<{ message: StoredMessage; duplicate: boolean }> {
    return this.fenced(() => this.storeOf(m.groupId).append(m));
  }

  /** Lists the group's conversation in each uid's user_conversations (see ShardedConversationIndex). */
  private index(groupId: string, uids: Uid[]): Promise<void> {
    return this.#index.add(groupConvId(groupId), uids);
  }

  /**
   * A write, following its slot while a rebalance moves it: the store's writes check the slot
   * fence (its guard), and a fenced write is tried again on the slot's owner in the new map.
   */
  private fenced<T>(write: () => Promise<T>): Promise<T> {
    return this.shards.retryingFences(write);
  }

  private storeOf(groupId: string): MysqlGroupStore {
    return this.storeOn(this.shards.instanceFor(groupConvId(groupId)).id);
  }

  private storeOn(instanceId: string): MysqlGroupStore {
    let store = this.#stores.get(instanceId);
    if (!store) {
      store = new MysqlGroupStore(this.shards.pool(instanceId), {
        deadlockRetries: this.options.deadlockRetries,
        guard: this.shards.guard,
        afterSendOutbox: this.options.afterSendOutbox,
      });
      this.#stores.set(instanceId, store);
    }
    return store;
  }
}

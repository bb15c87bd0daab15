import type { ChatMessage } from "../../gen/shardchat/v1/client.js";
import { GROUP_CONV_PREFIX, groupConvId, groupIdOfConv, isDecimalId } from "../../ids/identifiers.js";
import type { Logger } from "../../log/logger.js";
import { MysqlGroupStore, uniqueSorted } from "../mysql/group-store.js";
import type { GroupMemberRecord, GroupRecord, GroupRoleValue, GroupStore, NewGroupMessage, Uid } from "../ports.js";
import { ShardedConversationIndex } from "./conversation-index.js";
import type { Shards } from "./shards.js";

export interface ShardedGroupStoreOptions {
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries?: number;
  log?: Logger;
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

  async create(g: {
    groupId: string;
    name: string;
    owner: Uid;
    members: Uid[];
    maxMembers: number;
  }): Promise<GroupRecord> {
    const uids = uniqueSorted([g.owner, ...g.members]);
    if (uids.length <= g.maxMembers && isDecimalId(g.groupId)) await this.index(g.groupId, uids);
    return this.storeOf(g.groupId).create(g);
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
    return this.storeOf(groupId).addMembers(groupId, wanted, maxMembers);
  }

  async removeMember(groupId: string, uid: Uid): Promise<boolean> {
    const removed = await this.storeOf(groupId).removeMember(groupId, uid);
    if (removed) {
      await this.#index
        .remove(groupConvId(groupId), uid)
        .catch((err: unknown) => this.options.log?.warn({ err, uid, groupId }, "stale group index entry left"));
    }
    return removed;
  }

  setRole(groupId: string, uid: Uid, role: GroupRoleValue): Promise<boolean> {
    return this.storeOf(groupId).setRole(groupId, uid, role);
  }

  transferOwnership(groupId: string, from: Uid, to: Uid): Promise<boolean> {
    return this.storeOf(groupId).transferOwnership(groupId, from, to);
  }

  rename(groupId: string, name: string): Promise<GroupRecord | null> {
    return this.storeOf(groupId).rename(groupId, name);
  }

  /** The user's index names candidate groups; each group's shard confirms membership. */
  async groupsOf(uid: Uid): Promise<GroupRecord[]> {
    if (!isDecimalId(uid)) return [];
    const groupIds = (await this.#index.conversationsOf(uid, GROUP_CONV_PREFIX)).flatMap(
      (convId) => groupIdOfConv(convId) ?? [],
    );
    const byShard = new Map<string, string[]>();
    for (const id of groupIds) {
      const shard = this.shards.instanceFor(groupConvId(id)).id;
      const list = byShard.get(shard);
      if (list) list.push(id);
      else byShard.set(shard, [id]);
    }
    const answers = await Promise.all([...byShard].map(([shard, ids]) => this.storeOn(shard).groupsAmong(uid, ids)));
    return answers.flat().sort((a, b) => (BigInt(a.groupId) < BigInt(b.groupId) ? -1 : 1));
  }

  append(m: NewGroupMessage): Promise<{ message: ChatMessage; duplicate: boolean }> {
    return this.storeOf(m.groupId).append(m);
  }

  /** Lists the group's conversation in each uid's user_conversations (see ShardedConversationIndex). */
  private index(groupId: string, uids: Uid[]): Promise<void> {
    return this.#index.add(groupConvId(groupId), uids);
  }

  private storeOf(groupId: string): MysqlGroupStore {
    return this.storeOn(this.shards.instanceFor(groupConvId(groupId)).id);
  }

  private storeOn(instanceId: string): MysqlGroupStore {
    let store = this.#stores.get(instanceId);
    if (!store) {
      store = new MysqlGroupStore(this.shards.pool(instanceId), { deadlockRetries: this.options.deadlockRetries });
      this.#stores.set(instanceId, store);
    }
    return store;
  }
}

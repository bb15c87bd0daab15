import { directConvMembers, groupIdOfConv, type Uid } from "../ids/identifiers.js";
import type { Logger } from "../log/logger.js";
import type { BotRecord, BotStore, GroupStore } from "../storage/ports.js";

/** A bot a message goes to: its uid (named in the event) and where its calls go. */
export interface BotTarget {
  uid: Uid;
  webhookUrl: string;
}

/** The bots among a conversation's participants (the port the webhook dispatcher asks). */
export interface BotRecipients {
  /**
   * The bots that should see a message of convId sent by sender: a 1:1 conversation's other
   * member when it is a bot, a group's bot members; never the sender itself (a bot's own post
   * does not come back to it). Throws when storage cannot answer (the row is tried again later).
   */
  of(convId: string, sender: string): Promise<BotTarget[]>;
}

export interface BotDirectoryOptions {
  bots: Pick<BotStore, "list">;
  groups: Pick<GroupStore, "memberUids">;
  /** BOTS_CACHE_MS: how long the bot list and each group's bot members are reused. */
  ttlMs: number;
  /** Most groups whose bot members are remembered at once (the oldest go first). */
  maxGroups?: number;
  log?: Logger;
  now?: () => number;
}

interface Cached<T> {
  at: number;
  value: Promise<T>;
}

/**
 * The bots of each conversation, as the webhook dispatcher needs them per after-send row, from
 * two caches kept for BOTS_CACHE_MS: the list of every bot (one read of the bots table per
 * instance, whatever the traffic), and per group the bot members (one member read of the group,
 * not one per message: a 2,000-member group's posts cost one read per BOTS_CACHE_MS). A 1:1
 * conversation needs no read: its id names both users. With no bot at all, no group is read.
 * A change (a new bot, a new URL, a bot joining a group) counts from at most BOTS_CACHE_MS later.
 */
export class CachedBotDirectory implements BotRecipients {
  readonly #o: BotDirectoryOptions;
  readonly #now: () => number;
  readonly #maxGroups: number;
  #bots: Cached<Map<Uid, BotRecord>> | undefined;
  readonly #groups = new Map<string, Cached<Uid[]>>();

  constructor(options: BotDirectoryOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#maxGroups = options.maxGroups ?? 10_000;
  }

  async of(convId: string, sender: string): Promise<BotTarget[]> {
    const bots = await this.#allBots();
    if (bots.size === 0) return [];
    const pair = directConvMembers(convId);
    let uids: Uid[];
    if (pair) uids = pair.filter((uid) => bots.has(uid));
    else {
      const groupId = groupIdOfConv(convId);
      if (groupId === undefined) return [];
      uids = await this.#groupBots(groupId, bots);
    }
    const targets: BotTarget[] = [];
    for (const uid of uids) {
      const bot = bots.get(uid);
      if (bot && uid !== sender) targets.push({ uid, webhookUrl: bot.webhookUrl });
    }
    return targets;
  }

  /** The bots by uid, read again once older than the TTL (one read shared by concurrent callers). */
  #allBots(): Promise<Map<Uid, BotRecord>> {
    const now = this.#now();
    const cached = this.#bots;
    if (cached && now - cached.at < this.#o.ttlMs) return cached.value;
    const value = this.#o.bots.list().then((list) => new Map(list.map((b) => [b.uid, b])));
    this.#bots = { at: now, value };
    // A failed read is not kept: the next row asks again.
    value.catch((err: unknown) => {
      if (this.#bots?.value === value) this.#bots = undefined;
      this.#o.log?.warn({ err }, "reading the bots failed");
    });
    return value;
  }

  #groupBots(groupId: string, bots: Map<Uid, BotRecord>): Promise<Uid[]> {
    const now = this.#now();
    const cached = this.#groups.get(groupId);
    if (cached && now - cached.at < this.#o.ttlMs) return cached.value;
    const value = this.#o.groups.memberUids(groupId).then((members) => members.filter((uid) => bots.has(uid)));
    this.#groups.delete(groupId);
    this.#groups.set(groupId, { at: now, value });
    value.catch(() => {
      if (this.#groups.get(groupId)?.value === value) this.#groups.delete(groupId);
    });
    // Insertion order is age order: past the bound, the oldest entries go.
    while (this.#groups.size > this.#maxGroups) {
      const oldest = this.#groups.keys().next().value;
      if (oldest === undefined) break;
      this.#groups.delete(oldest);
    }
    return value;
  }
}

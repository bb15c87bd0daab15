import { afterAll, describe, expect, it } from "vitest";
import { Snowflake } from "../src/ids/snowflake.js";
import type { StoredMessage } from "../src/storage/ports.js";
import { seedData } from "../src/storage/seed-data.js";
import { ShardedBulkImporter } from "../src/storage/sharded/bulk-import.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { ShardedUserStore } from "../src/storage/sharded/user-store.js";
import { SqliteGroupStore } from "../src/storage/sqlite/group-store.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { SqliteUserStore } from "../src/storage/sqlite/user-store.js";
import { openTestShards } from "./helpers/shards.js";
import { tempSqlite } from "./helpers/sqlite.js";
import { stackInfraUp } from "./helpers/stack.js";

/**
 * The data generator (npm run seed-data) through the stores' own write paths: every message it
 * says it stored is readable, each conversation's seqs are 1..n without a gap, and the users
 * exist. On SQLite and on the sharded MySQL stack.
 */
const options = {
  users: 30,
  messages: 1500,
  groups: 2,
  groupSize: 5,
  groupShare: 0.2,
  concurrency: 64,
  passwordHash: "x",
};

/** Every message of every seeded user's conversations, read back with pending (all unacked). */
async function readBack(
  messages: { pending(uid: string, limit: number): Promise<{ messages: StoredMessage[]; more: boolean }> },
  users: string[],
): Promise<Map<string, Set<number>>> {
  const seqs = new Map<string, Set<number>>();
  for (const uid of users) {
    const { messages: got, more } = await messages.pending(uid, 100_000);
    expect(more).toBe(false);
    for (const m of got) {
      const set = seqs.get(m.convId) ?? new Set<number>();
      set.add(m.seq);
      seqs.set(m.convId, set);
    }
  }
  return seqs;
}

function expectGapless(seqs: Map<string, Set<number>>): number {
  let total = 0;
  for (const [, set] of seqs) {
    expect(Math.max(...set)).toBe(set.size);
    total += set.size;
  }
  return total;
}

describe("seedData", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("fills SQLite with users, groups and gapless conversations", async () => {
    const sqlite = tempSqlite("sc-seed-");
    cleanups.push(() => sqlite.remove());
    const stores = {
      users: new SqliteUserStore(sqlite.db),
      messages: new SqliteMessageStore(sqlite.db),
      groups: new SqliteGroupStore(sqlite.db),
    };
    const report = await seedData(stores, new Snowflake({ workerId: 1 }), { ...options, run: "lite" });
    expect(report).toMatchObject({ messages: options.messages });
    expect(report.users).toHaveLength(options.users);
    expect(report.groupIds).toHaveLength(options.groups);
    expect((await stores.users.byName("seed_lite_7"))?.uid).toBe(report.users[7]);
    const seqs = await readBack(stores.messages, report.users);
    expect(seqs.size).toBe(report.conversations);
    expect(expectGapless(seqs)).toBe(options.messages);
    // Every group got some of the 20 %.
    for (const groupId of report.groupIds) expect(seqs.get(`g:${groupId}`)?.size ?? 0).toBeGreaterThan(0);
  });

  /** The sharded stores on a test database of the stack's shards (dropped at the end). */
  async function shardedStores() {
    const { shards, close } = await openTestShards((await stackInfraUp()).mysqlPorts);
    cleanups.push(close);
    const stores = {
      users: new ShardedUserStore(shards),
      messages: new ShardedMessageStore(shards),
      groups: new ShardedGroupStore(shards),
    };
    return { shards, stores };
  }

  it("fills the sharded MySQL stack the same way", async () => {
    const { stores } = await shardedStores();
    const report = await seedData(stores, new Snowflake({ workerId: 2 }), { ...options, run: "shards" });
    expect(report.messages).toBe(options.messages);
    const seqs = await readBack(stores.messages, report.users);
    expect(seqs.size).toBe(report.conversations);
    expect(expectGapless(seqs)).toBe(options.messages);
  }, 120_000);

  it("bulk-loads the shards through their importer: users findable, history complete, gapless, delivered and read", async () => {
    const { shards, stores: live } = await shardedStores();
    const stores = { ...live, bulk: new ShardedBulkImporter(shards) };
    const conversationList = new ShardedConversationStore(shards);
    // Batches smaller than the run: conversations continue across batches.
    const bulk = { ...options, messages: 6000, bulkBatch: 700 };
    const report = await seedData(stores, new Snowflake({ workerId: 3 }), { ...bulk, run: "bulk" });
    expect(report.messages).toBe(bulk.messages);
    // The users were imported with their name and email index rows: found both ways.
    expect((await stores.users.byName("seed_bulk_7"))?.uid).toBe(report.users[7]);
    expect((await stores.users.byEmail("SEED_bulk_7@example.test"))?.uid).toBe(report.users[7]);
    expect(await stores.users.existing(report.users)).toEqual(new Set(report.users));
    const seqs = new Map<string, Set<number>>();
    for (const uid of report.users) {
      // The history counts as delivered: nothing is pending.
      expect((await stores.messages.pending(uid, 10)).messages).toEqual([]);
      for (const c of await conversationList.list(uid, 1000)) {
        expect(c.readSeq).toBe(c.lastSeq);
        if (seqs.has(c.convId)) continue;
        const page = await stores.messages.history(uid, c.convId, { afterSeq: 0, beforeSeq: 0, limit: 10_000 });
        expect(page.at(-1)?.seq).toBe(c.lastSeq);
        seqs.set(c.convId, new Set(page.map((m) => m.seq)));
      }
    }
    expect(seqs.size).toBe(report.conversations);
    expect(expectGapless(seqs)).toBe(bulk.messages);
    for (const groupId of report.groupIds) expect(seqs.get(`g:${groupId}`)?.size ?? 0).toBeGreaterThan(0);
  }, 120_000);
});

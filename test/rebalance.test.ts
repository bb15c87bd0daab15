import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PLACEMENTS } from "../sharding/placements.js";
import {
  describePlan,
  PlanRefused,
  planRebalance,
  Rebalancer,
  type RebalancerOptions,
  SimulatedCrash,
  type SlotDigest,
  type Step,
  validatePlan,
} from "../sharding/rebalance.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, uidOf } from "../src/ids/identifiers.js";
import { createPool, type Pool } from "../src/storage/mysql/pool.js";
import type { NewMessage, Uid } from "../src/storage/ports.js";
import { ShardedBlockStore } from "../src/storage/sharded/block-store.js";
import { ShardedFileMetaStore } from "../src/storage/sharded/file-meta-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { ShardedReportStore } from "../src/storage/sharded/report-store.js";
import { evenShardMap, type ShardMap, slotOf } from "../src/storage/sharded/shard-map.js";
import { configuredInstances, migrateShards, readShardMap, Shards } from "../src/storage/sharded/shards.js";
import { ShardedUserStore } from "../src/storage/sharded/user-store.js";
import { testConfig } from "./helpers/env.js";
import { textMessage } from "./helpers/messages.js";

// Four throwaway databases on the machine's MariaDB play four instances: s0..s2 hold the data,
// s3 is the one added. Few slots keep every rebalance here small.
const SLOTS = 64;
let config: Config;
let urls: string[];
let shards: Shards;
let messages: ShardedMessageStore;
let users: ShardedUserStore;
let blocks: ShardedBlockStore;
let reports: ShardedReportStore;
/** Seeded blocks (blocker → blocked) and reports (issue 17): placed by their own keys, they move too. */
const seededBlocks = new Map<Uid, Uid>();
const seededReports = new Set<string>();
let control: Pool;
const direct = new Map<string, mysql.Connection>();
let nextId = 900719925474099000n;
const newId = () => uidOf(nextId++);

function message(sender: Uid, recipient: Uid, text: string): NewMessage {
  return textMessage(sender, recipient, text, {
    msgId: newId(),
    clientMsgId: `c-${newId()}`,
    sentAtMs: 1_700_000_000_000,
  });
}

function rebalancer(extra: Partial<RebalancerOptions> = {}): Rebalancer {
  return new Rebalancer(control, {
    batchSlots: 3,
    copyRows: 7,
    cleanupGraceMs: 2 * config.SHARD_MAP_REFRESH_MS,
    urls: new Map(urls.map((u, i) => [`s${i}`, u])),
    credentialsFrom: urls[0],
    ...extra,
  });
}

/** Rows and checksum of every slot, each read on the instance that owns it now. */
async function slotDigests(r: Rebalancer): Promise<Map<number, SlotDigest>> {
  const map = (await readShardMap(control)) as ShardMap;
  await r.prepare();
  const all = new Map<number, SlotDigest>();
  for (const [index, instance] of map.instances.entries()) {
    const own = map.owner.flatMap((o, slot) => (o === index ? [slot] : []));
    for (const [slot, d] of await r.digests(instance.id, own, map.slots)) all.set(slot, d);
  }
  return all;
}

async function rowsOn(id: string, sql: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const [rows] = await (direct.get(id) as mysql.Connection).query<RowDataPacket[]>(sql, params);
  return rows;
}

/** Per instance: the change record's triggers and recorded keys (both 0 when no job runs). */
async function recording(): Promise<number[]> {
  return Promise.all(
    ["s0", "s1", "s2", "s3"].map(async (id) => {
      const [triggers] = await rowsOn(
        id,
        "SELECT COUNT(*) AS n FROM information_schema.triggers WHERE trigger_schema = DATABASE()",
      );
      const [keys] = await rowsOn(id, "SELECT COUNT(*) AS n FROM slot_changes");
      return Number(triggers?.n) + Number(keys?.n);
    }),
  );
}

/** Some users, and conversations with a few messages each, through the sharded stores. */
async function seed(conversations: number): Promise<{ convIds: string[]; uids: Uid[] }> {
  const convIds: string[] = [];
  const uids: Uid[] = [];
  for (let i = 0; i < conversations; i++) {
    const [a, b] = [newId(), newId()];
    await users.create({
      uid: a,
      name: `Ünïcode-${a}`,
      email: `U${a}@Example.org`,
      passwordHash: "x",
      createdAt: 1_700_000_000_000,
    });
    uids.push(a);
    for (let m = 0; m < 3; m++) await messages.append(message(m % 2 ? b : a, m % 2 ? a : b, `m${m}`));
    const convId = convIdForPair(a, b);
    // The message model's rows (issue 16) move with their conversation: a reaction (a row in
    // message_reactions, an event) and a delete-for-me mark (message_hidden).
    await messages.change({
      convId,
      targetSeq: 1,
      msgId: newId(),
      actor: b,
      sentAtMs: 1_700_000_000_000,
      decide: () => ({ kind: "react", emoji: "👍", add: true, maxDistinct: 20 }),
    });
    await messages.hide(a, convId, [2]);
    // A block (its row on a's shard, its mark on the empty conversation row of a and a user a
    // never talked to) and a report (placed by its id).
    const blocked = newId();
    await blocks.block(a, blocked, 1_700_000_000_000);
    seededBlocks.set(a, blocked);
    const reportId = newId();
    await reports.create({
      reportId,
      reporter: b,
      uid: a,
      convId,
      seq: 1,
      snapshot: "m0",
      reason: "seeded",
      createdAt: 1_700_000_000_000,
    });
    seededReports.add(reportId);
    convIds.push(convId);
  }
  return { convIds, uids };
}

/** Every conversation still answers its whole history through the stores (after a map refresh). */
async function expectReadable(convIds: string[], uids: Uid[]): Promise<void> {
  await shards.refresh();
  for (const convId of convIds) {
    const [, a] = convId.split(":");
    const page = await messages.history(a as Uid, convId, { afterSeq: 0, beforeSeq: 0, limit: 100 });
    expect(page.map((m) => m.seq)).toEqual(page.map((_, i) => i + 1));
    expect(page.length).toBeGreaterThanOrEqual(3);
    if (page.length > 3) {
      // A seeded conversation: its reaction and the reader's delete-for-me mark came along.
      expect(page[0]?.reactions?.counts).toEqual([{ emoji: "👍", count: 1, me: false }]);
      expect(page[1]?.deletedForMe).toBe(true);
    }
  }
  for (const uid of uids) {
    expect((await users.byUid(uid))?.uid).toBe(uid);
    expect((await users.byName(`ünicode-${uid}`))?.uid).toBe(uid);
    expect((await users.byEmail(`u${uid}@example.org`))?.uid).toBe(uid);
    const blocked = seededBlocks.get(uid);
    if (blocked) {
      // The block's row and its mark, each where its key went.
      expect((await blocks.blocked(uid, 10)).map((r) => r.uid)).toEqual([blocked]);
      expect([...(await blocks.blockedAmong(blocked, [uid]))]).toEqual([uid]);
    }
  }
  const reported = new Set((await reports.recent(0, 100_000)).map((r) => r.reportId));
  expect([...seededReports].filter((id) => !reported.has(id))).toEqual([]);
}

/** No instance holds rows of a slot it does not own (the moved copies were deleted). */
async function expectNoStrays(): Promise<void> {
  const map = (await readShardMap(control)) as ShardMap;
  for (const [index, instance] of map.instances.entries()) {
    for (const row of await rowsOn(instance.id, "SELECT conv_id FROM conversations")) {
      expect(map.owner[slotOf(String(row.conv_id), SLOTS)], `${row.conv_id} on ${instance.id}`).toBe(index);
    }
    for (const row of await rowsOn(instance.id, "SELECT uid FROM users")) {
      expect(map.owner[slotOf(String(row.uid), SLOTS)], `user ${row.uid} on ${instance.id}`).toBe(index);
    }
  }
}

beforeAll(async () => {
  const base = testConfig();
  urls = [0, 1, 2, 3].map((i) => `${base.MYSQL_URL}_${i}`);
  config = {
    ...base,
    MYSQL_URL: urls[0] as string,
    MYSQL_SHARDS: urls.slice(0, 3).join(","),
    SHARD_SLOTS: SLOTS,
    SHARD_MAP_REFRESH_MS: 100,
    SHARD_FENCE_WAIT_MS: 3000,
  };
  await migrateShards(configuredInstances({ ...config, MYSQL_SHARDS: urls.join(",") }));
  shards = await Shards.open(config);
  messages = new ShardedMessageStore(shards);
  users = new ShardedUserStore(shards);
  blocks = new ShardedBlockStore(shards);
  reports = new ShardedReportStore(shards);
  control = createPool({ MYSQL_URL: urls[0] as string, MYSQL_POOL_SIZE: 2 });
  for (const [i, uri] of urls.entries()) {
    direct.set(`s${i}`, await mysql.createConnection({ uri, supportBigNumbers: true, bigNumberStrings: true }));
  }
}, 120_000);

afterAll(async () => {
  await shards?.close();
  await control?.end();
  for (const conn of direct.values()) {
    await conn.query(`DROP DATABASE IF EXISTS \`${conn.config.database}\``).catch(() => undefined);
    await conn.end();
  }
});

const three = [
  { id: "s0", url: "mysql://a/x" },
  { id: "s1", url: "mysql://b/x" },
  { id: "s2", url: "mysql://c/x" },
];

describe("rebalance planner", () => {
  it("places each table once (a table listed twice is copied, checked and deleted twice)", () => {
    const tables = PLACEMENTS.map((p) => p.table);
    expect(tables.filter((t, i) => tables.indexOf(t) !== i)).toEqual([]);
  });

  it("plans a third of the slots onto a new instance, taken from the fullest ones", () => {
    const map = evenShardMap(three, 1024);
    const plan = planRebalance(map, { add: { id: "s3", url: "mysql://d/x" }, count: 341 }, "job-1");
    expect(plan.moves).toHaveLength(341);
    expect(new Set(plan.moves.map((m) => m.to))).toEqual(new Set(["s3"]));
    const from = Object.fromEntries(
      ["s0", "s1", "s2"].map((id) => [id, plan.moves.filter((m) => m.from === id).length]),
    );
    for (const n of Object.values(from)) expect(Math.abs(n - 341 / 3)).toBeLessThanOrEqual(2);
    const text = describePlan(map, plan);
    console.log(text);
    expect(text).toContain("341 of 1024 slots move");
    expect(text).toContain("s3=341");
  });

  it("defaults to an even share for the new instance", () => {
    const plan = planRebalance(evenShardMap(three, 1024), { add: { id: "s3", url: "mysql://d/x" } });
    expect(plan.moves).toHaveLength(256);
  });

  it("spreads a retired instance's slots over the others", () => {
    const map = evenShardMap(three, 90);
    const plan = planRebalance(map, { retire: ["s1"] });
    expect(plan.moves).toHaveLength(30);
    expect(plan.moves.every((m) => m.from === "s1")).toBe(true);
    expect(plan.moves.filter((m) => m.to === "s0")).toHaveLength(15);
    expect(plan.moves.filter((m) => m.to === "s2")).toHaveLength(15);
  });

  it("refuses plans that would leave a slot without a home", () => {
    const map = evenShardMap(three, 30);
    const refusal = (fn: () => unknown) => {
      try {
        fn();
        return "accepted";
      } catch (err) {
        return err instanceof PlanRefused ? err.message : `not a refusal: ${String(err)}`;
      }
    };
    expect(refusal(() => planRebalance(map, { retire: ["s0", "s1", "s2"] }))).toMatch(/without a home/);
    expect(refusal(() => planRebalance(map, { retire: ["s1"], to: "s1" }))).toMatch(/both retired and a destination/);
    expect(refusal(() => planRebalance(map, { retire: ["s9"] }))).toMatch(/not in shard map/);
    expect(refusal(() => planRebalance(map, { retire: ["s1"], to: "s7" }))).toMatch(/not in shard map/);
    expect(refusal(() => planRebalance(map, { add: { id: "s3", url: "u" }, count: 31 }))).toMatch(/only 30/);
    // A hand-made plan that retires s2 but moves only some of its slots.
    const partial = {
      jobId: "j",
      fromVersion: 1,
      adds: [],
      retires: ["s2"],
      moves: [{ slot: 25, from: "s2", to: "s0" }],
    };
    expect(refusal(() => validatePlan(map, partial))).toMatch(/9 slot\(s\) would be left without a home/);
    // A move to an instance nobody knows the URL of.
    const nowhere = { jobId: "j", fromVersion: 1, adds: [], retires: [], moves: [{ slot: 1, from: "s0", to: "s5" }] };
    expect(refusal(() => validatePlan(map, nowhere))).toMatch(/no URL/);
    const wrongOwner = {
      jobId: "j",
      fromVersion: 1,
      adds: [],
      retires: [],
      moves: [{ slot: 1, from: "s1", to: "s2" }],
    };
    expect(refusal(() => validatePlan(map, wrongOwner))).toMatch(/owned by s0/);
  });
});

describe("rebalancer on four databases", () => {
  // A test that fails midway leaves its job open and its slots fenced; abort it here so the
  // next test reports its own result, not SLOT_MOVING or "unfinished" from this one.
  afterEach(async () => {
    const r = rebalancer();
    try {
      const open = await r.openJob();
      if (open) await r.abort(open);
    } finally {
      await r.close();
    }
  });

  it("hashes keys in SQL exactly as slotOf does (MariaDB CRC32 = node:zlib crc32)", async () => {
    const keys = ["p:1:2", "name:ünïcode", "名前", "12345678901234567890", "file:42"];
    const rows = await rowsOn(
      "s0",
      `SELECT ${keys.map(() => "CRC32(?) % ?").join(", ")}`,
      keys.flatMap((k) => [k, 1024]),
    );
    expect(Object.values(rows[0] ?? {}).map(Number)).toEqual(keys.map((k) => slotOf(k, 1024)));
    const [uid] = await rowsOn("s0", "SELECT CRC32(CAST(CAST(? AS UNSIGNED) AS CHAR)) % 1024 AS s", [
      "18446744073709551615",
    ]);
    expect(Number(uid?.s)).toBe(slotOf("18446744073709551615", 1024));
  });

  it("a dry run stores nothing; a run moves a third of the slots while writes go on, counts and checksums equal", async () => {
    const { convIds, uids } = await seed(40);
    const r = rebalancer();
    const before = await slotDigests(r);
    const map = (await readShardMap(control)) as ShardMap;
    const plan = planRebalance(map, { add: { id: "s3", url: urls[3] as string }, count: Math.round(SLOTS / 3) });
    // The dry run is planning alone: the map and the job tables are untouched.
    expect((await readShardMap(control))?.version).toBe(map.version);
    expect(await rowsOn("s0", "SELECT * FROM rebalance_jobs")).toHaveLength(0);

    await r.start(plan);
    const progress: string[] = [];
    const pair = [newId(), newId()] as const;
    let stop = false;
    const acked: number[] = [];
    // One conversation keeps writing during the move: every acked message must be there once.
    // A write that waited out SHARD_FENCE_WAIT_MS (a slow machine) is answered SLOT_MOVING and
    // stored nothing; the writer sends it again, as a client does.
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const next = message(pair[i % 2] as Uid, pair[(i + 1) % 2] as Uid, `live ${i}`);
        for (;;) {
          const stored = await messages.append(next).then(
            (r) => r.message,
            (err: unknown) => {
              if (err instanceof AppError && err.code === ErrorCode.SLOT_MOVING) return null;
              throw err;
            },
          );
          if (stored) {
            acked.push(stored.seq);
            break;
          }
        }
      }
    })();
    const run = rebalancer({ onProgress: (p) => progress.push(`${p.phase} ${p.slotsDone}/${p.slotsTotal} ${p.rows}`) });
    const summary = await run.run(plan.jobId);
    stop = true;
    // Every slot's last sync was the change record's catch-up: none had to be compared whole.
    expect(summary.repairs).toBe(0);
    await writer;
    await run.close();
    console.log("progress:", progress.join(" | "));
    expect(progress.at(-1)).toMatch(new RegExp(`^done ${plan.moves.length}/${plan.moves.length}`));

    const after = (await readShardMap(control)) as ShardMap;
    expect(after.version).toBeGreaterThan(map.version);
    expect(after.owner.filter((o) => after.instances[o]?.id === "s3")).toHaveLength(plan.moves.length);
    const live = convIdForPair(pair[0], pair[1]);
    await shards.refresh();
    const history = await messages.history(pair[0], live, { afterSeq: 0, beforeSeq: 0, limit: 10_000 });
    expect(history.map((m) => m.seq)).toEqual(acked);
    // Slots other than the live conversation's hold exactly what they held before.
    // (its members' user_conversations rows are new too).
    const liveSlots = new Set([live, ...pair].map((k) => slotOf(k, SLOTS)));
    const afterDigests = await slotDigests(r);
    for (const [slot, d] of before) {
      if (!liveSlots.has(slot)) expect(afterDigests.get(slot), `slot ${slot}`).toEqual(d);
    }
    await expectReadable(convIds, uids);
    await expectNoStrays();
    await r.close();
  }, 120_000);

  it.each<Step>(["copied", "fenced", "verified", "switched"])(
    "resumes after a crash once slots were %s",
    async (step) => {
      const { convIds, uids } = await seed(8);
      const r = rebalancer();
      const before = await slotDigests(r);
      const map = (await readShardMap(control)) as ShardMap;
      const plan = planRebalance(map, { add: { id: "s3", url: urls[3] as string }, count: 5 });
      await r.start(plan);
      const crashing = rebalancer({ crashAfter: step });
      await expect(crashing.run(plan.jobId)).rejects.toBeInstanceOf(SimulatedCrash);
      await crashing.close();
      expect(await r.openJob()).toBe(plan.jobId);
      expect((await r.stepCounts(plan.jobId))[step]).toBeGreaterThan(0);
      // A second job is refused while this one is unfinished.
      await expect(r.start(planRebalance(map, { retire: ["s2"] }))).rejects.toBeInstanceOf(PlanRefused);

      await r.run((await r.openJob()) as string);
      expect(await r.openJob()).toBeNull();
      expect(await r.stepCounts(plan.jobId)).toEqual({ cleaned: plan.moves.length });
      expect(await slotDigests(r)).toEqual(before);
      await expectReadable(convIds, uids);
      await expectNoStrays();
      await r.close();
    },
    60_000,
  );

  it("abort puts slots that were not switched back where they were", async () => {
    const { convIds, uids } = await seed(6);
    const r = rebalancer();
    const before = await slotDigests(r);
    const map = (await readShardMap(control)) as ShardMap;
    const plan = planRebalance(map, { add: { id: "s3", url: urls[3] as string }, count: 4 });
    await r.start(plan);
    const crashing = rebalancer({ crashAfter: "fenced", batchSlots: 10 });
    await expect(crashing.run(plan.jobId)).rejects.toBeInstanceOf(SimulatedCrash);
    await crashing.close();
    expect(await r.abort(plan.jobId)).toEqual({ reverted: 4, kept: 0 });
    expect((await readShardMap(control))?.version).toBe(map.version);
    expect(await slotDigests(r)).toEqual(before);
    const fences = await Promise.all(
      ["s0", "s1", "s2"].map((id) => rowsOn(id, "SELECT * FROM slot_fence WHERE job_id = ?", [plan.jobId])),
    );
    expect(fences.flat()).toHaveLength(0);
    expect(await recording()).toEqual([0, 0, 0, 0]);
    await expectReadable(convIds, uids);
    await expectNoStrays();
    await r.close();
  }, 60_000);

  it("catches up from the change record: rows inserted, updated and deleted after the copy reach the target", async () => {
    const r = rebalancer();
    const map = (await readShardMap(control)) as ShardMap;
    const plan = planRebalance(map, { add: { id: "s3", url: urls[3] as string }, count: 16 });
    const moving = new Set(plan.moves.map((m) => m.slot));
    const convIds: string[] = [];
    const uids: Uid[] = [];
    while (convIds.filter((c) => moving.has(slotOf(c, SLOTS))).length < 2) {
      const seeded = await seed(4);
      convIds.push(...seeded.convIds);
      uids.push(...seeded.uids);
    }
    await r.start(plan);
    const copying = rebalancer({ crashAfter: "copied" });
    await expect(copying.run(plan.jobId)).rejects.toBeInstanceOf(SimulatedCrash);
    await copying.close();
    // The sources record while the job is unfinished; the target does not.
    const record = await recording();
    expect(record[3]).toBe(0);
    expect(record.slice(0, 3).filter((n) => n > 0).length).toBeGreaterThan(0);

    // Writes after the copy, in moving slots, through the stores and behind their back.
    const [appended = "", edited = ""] = convIds.filter((c) => moving.has(slotOf(c, SLOTS)));
    const [, a = "", b = ""] = appended.split(":");
    const { message: added } = await messages.append(message(a as Uid, b as Uid, "after the copy"));
    const owner = (convId: string) => shards.instanceFor(convId).id;
    await rowsOn(owner(edited), "UPDATE messages SET body = 'edited after the copy' WHERE conv_id = ? AND seq = 2", [
      edited,
    ]);
    await rowsOn(owner(edited), "DELETE FROM messages WHERE conv_id = ? AND seq = 3", [edited]);
    // A user in a moving slot: its name and email index rows are placed in Node, not in SQL.
    let uid = newId();
    while (!moving.has(slotOf(uid, SLOTS))) uid = newId();
    await users.create({ uid, name: `late-${uid}`, email: `late${uid}@example.org`, passwordHash: "x", createdAt: 1 });

    const summary = await r.run(plan.jobId);
    expect(summary.repairs).toBe(0);
    expect(summary.changes).toBeGreaterThanOrEqual(4);
    expect(await recording()).toEqual([0, 0, 0, 0]);
    await shards.refresh();
    expect(shards.instanceFor(appended).id).toBe("s3");
    const history = await messages.history(a as Uid, appended, { afterSeq: 0, beforeSeq: 0, limit: 100 });
    expect(history.at(-1)?.seq).toBe(added.seq);
    expect(await rowsOn("s3", "SELECT seq, body FROM messages WHERE conv_id = ? ORDER BY seq", [edited])).toEqual([
      { seq: 1, body: expect.anything() },
      { seq: 2, body: "edited after the copy" },
      // The seeded reaction's event.
      { seq: 4, body: "" },
    ]);
    expect((await users.byName(`late-${uid}`))?.uid).toBe(uid);
    expect((await users.byEmail(`late${uid}@example.org`))?.uid).toBe(uid);
    await expectReadable(
      convIds.filter((c) => c !== edited),
      uids,
    );
    await expectNoStrays();
    await r.close();
  }, 60_000);

  it("a write to a fenced slot waits, then answers SLOT_MOVING if the slot never moves", async () => {
    const [a, b] = [newId(), newId()];
    const convId = convIdForPair(a, b);
    const slot = slotOf(convId, SLOTS);
    const home = shards.instanceFor(convId).id;
    await rowsOn(home, "INSERT INTO slot_fence (slot, state, job_id, created_at) VALUES (?, 'moving', 'test', 0)", [
      slot,
    ]);
    try {
      const code = await messages.append(message(a, b, "blocked")).then(
        () => "stored",
        (err: unknown) => (err instanceof AppError ? err.code : String(err)),
      );
      expect(code).toBe(ErrorCode.SLOT_MOVING);
      expect(await rowsOn(home, "SELECT * FROM messages WHERE conv_id = ?", [convId])).toHaveLength(0);
    } finally {
      await rowsOn(home, "DELETE FROM slot_fence WHERE job_id = 'test'");
    }
    await messages.append(message(a, b, "after"));
    expect(await rowsOn(home, "SELECT * FROM messages WHERE conv_id = ?", [convId])).toHaveLength(1);
  }, 30_000);

  it("group and file writes to a fenced slot write nothing and answer SLOT_MOVING, like messages", async () => {
    const groups = new ShardedGroupStore(shards);
    const files = new ShardedFileMetaStore(shards);
    const [owner, member] = [newId(), newId()];
    const groupId = newId();
    await groups.create({ groupId, name: "fenced", owner, members: [member], maxMembers: 10 });
    const fileId = newId();
    const fence = async (key: string) => {
      const home = shards.instanceFor(key).id;
      await rowsOn(home, "INSERT INTO slot_fence (slot, state, job_id, created_at) VALUES (?, 'moving', 'test', 0)", [
        slotOf(key, SLOTS),
      ]);
      return home;
    };
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => "stored",
        (err: unknown) => (err instanceof AppError ? err.code : String(err)),
      );
    const groupHome = await fence(groupConvId(groupId));
    const fileHome = await fence(`file:${fileId}`);
    try {
      const post = {
        groupId,
        msgId: newId(),
        sender: owner,
        clientMsgId: "fenced-1",
        kind: 1,
        text: "no",
        sentAtMs: 1,
      };
      expect(await codeOf(groups.append(post))).toBe(ErrorCode.SLOT_MOVING);
      expect(await codeOf(groups.addMembers(groupId, [newId()], 10))).toBe(ErrorCode.SLOT_MOVING);
      expect(await codeOf(groups.rename(groupId, "renamed"))).toBe(ErrorCode.SLOT_MOVING);
      const file = { id: fileId, owner, convId: groupConvId(groupId), name: "f", size: 1, contentType: "text/plain" };
      expect(await codeOf(files.create({ ...file, createdAt: 1 }))).toBe(ErrorCode.SLOT_MOVING);
      expect(await rowsOn(groupHome, "SELECT * FROM messages WHERE conv_id = ?", [groupConvId(groupId)])).toHaveLength(
        0,
      );
      expect(await rowsOn(groupHome, "SELECT name FROM chat_groups WHERE group_id = ?", [groupId])).toEqual([
        { name: "fenced" },
      ]);
      expect(await rowsOn(fileHome, "SELECT * FROM files WHERE file_id = ?", [fileId])).toHaveLength(0);
    } finally {
      await rowsOn(groupHome, "DELETE FROM slot_fence WHERE job_id = 'test'");
      await rowsOn(fileHome, "DELETE FROM slot_fence WHERE job_id = 'test'");
    }
    expect(await groups.rename(groupId, "renamed")).toMatchObject({ name: "renamed" });
  }, 60_000);

  it("batched delivery acks to a fenced slot move no cursor and answer SLOT_MOVING", async () => {
    const [a, b] = [newId(), newId()];
    // Acks batched as a chat node's flush sends them: two users' cursors, of two conversations on
    // one instance, in one transaction; only the first conversation's slot is fenced.
    // (One transaction in flight: the first ack goes alone, the two after it wait and go together.)
    const batching = new ShardedMessageStore(shards, { batchMax: 8, ackBatchMax: 8, batchConcurrency: 1 });
    const toB = convIdForPair(a, b);
    const home = shards.instanceFor(toB).id;
    let c = newId();
    while (
      shards.instanceFor(convIdForPair(a, c)).id !== home ||
      slotOf(convIdForPair(a, c), SLOTS) === slotOf(toB, SLOTS)
    )
      c = newId();
    const toC = convIdForPair(a, c);
    await batching.append(message(a, b, "one"));
    await batching.append(message(a, c, "two"));
    const cursor = async (convId: string, uid: Uid) =>
      Number(
        (
          await rowsOn(
            shards.instanceFor(convId).id,
            "SELECT delivered_seq FROM conversation_members WHERE conv_id = ? AND uid = ?",
            [convId, uid],
          )
        )[0]?.delivered_seq,
      );
    await rowsOn(home, "INSERT INTO slot_fence (slot, state, job_id, created_at) VALUES (?, 'moving', 'test', 0)", [
      slotOf(toB, SLOTS),
    ]);
    try {
      const outcomes = await Promise.all(
        [
          batching.ack(c, [{ convId: toC, seq: 1 }]),
          batching.ack(b, [{ convId: toB, seq: 1 }]),
          batching.ack(c, [{ convId: toC, seq: 1 }]),
        ].map((p) =>
          p.then(
            () => "stored",
            (err: unknown) => (err instanceof AppError ? err.code : String(err)),
          ),
        ),
      );
      expect(outcomes).toEqual(["stored", ErrorCode.SLOT_MOVING, "stored"]);
      expect([await cursor(toB, b), await cursor(toC, c)]).toEqual([0, 1]);
    } finally {
      await rowsOn(home, "DELETE FROM slot_fence WHERE job_id = 'test'");
    }
    await batching.ack(b, [{ convId: toB, seq: 1 }]);
    await batching.ack(c, [{ convId: toC, seq: 1 }]);
    expect([await cursor(toB, b), await cursor(toC, c)]).toEqual([1, 1]);
  }, 30_000);

  it("refuses to move slots of a table it cannot place", async () => {
    await rowsOn("s1", "CREATE TABLE IF NOT EXISTS mystery (id INT PRIMARY KEY)");
    await rowsOn("s1", "INSERT INTO mystery VALUES (1)");
    const r = rebalancer();
    const map = (await readShardMap(control)) as ShardMap;
    const plan = planRebalance(map, { retire: ["s1"] });
    await r.start(plan);
    await expect(r.run(plan.jobId)).rejects.toThrow(/mystery on s1 has rows but no placement/);
    expect(await r.abort(plan.jobId)).toEqual({ reverted: plan.moves.length, kept: 0 });
    await rowsOn("s1", "DROP TABLE mystery");
    await r.close();
  }, 30_000);
});

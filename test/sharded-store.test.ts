import mysql, { type RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, uidOf } from "../src/ids/identifiers.js";
import type { NewMessage, Uid } from "../src/storage/ports.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { configuredInstances, migrateShards, Shards } from "../src/storage/sharded/shards.js";
import { ShardedUserStore } from "../src/storage/sharded/user-store.js";
import { testConfig } from "./helpers/env.js";
import { startMemoryNode } from "./helpers/memory-node.js";
import { textMessage } from "./helpers/messages.js";
import { freePort } from "./helpers/ports.js";
import { stackInfraUp } from "./helpers/stack.js";

// On the stack's MariaDB instances (3306 + the extra mariadbd on 3307, 3308), each test run in
// its own database on every instance.
let config: Config;
let shards: Shards;
let messages: ShardedMessageStore;
let users: ShardedUserStore;
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

/** Runs sql on one instance directly (not through the store). */
async function onInstance(id: string, sql: string, params: unknown[] = []): Promise<RowDataPacket[]> {
  const conn = direct.get(id);
  if (!conn) throw new Error(`no instance ${id}`);
  const [rows] = await conn.query<RowDataPacket[]>(sql, params);
  return rows;
}

async function rejection(promise: Promise<unknown>): Promise<ErrorCode | string> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    return err instanceof AppError ? err.code : `not an AppError: ${String(err)}`;
  }
}

const instanceIds = () => shards.map.instances.map((i) => i.id);

beforeAll(async () => {
  const stack = await stackInfraUp();
  const base = testConfig();
  const db = new URL(base.MYSQL_URL).pathname.slice(1);
  const urls = stack.mysqlPorts.map((port) => `mysql://root@127.0.0.1:${port}/${db}`);
  config = { ...base, MYSQL_URL: urls[0] as string, MYSQL_SHARDS: urls.join(","), SHARD_SLOTS: 1024 };
  await migrateShards(configuredInstances(config));
  shards = await Shards.open(config);
  messages = new ShardedMessageStore(shards, { deadlockRetries: config.MYSQL_DEADLOCK_RETRIES });
  users = new ShardedUserStore(shards);
  for (const instance of configuredInstances(config)) {
    direct.set(
      instance.id,
      await mysql.createConnection({ uri: instance.url, supportBigNumbers: true, bigNumberStrings: true }),
    );
  }
}, 300_000);

afterAll(async () => {
  await shards?.close();
  for (const conn of direct.values()) {
    await conn.query(`DROP DATABASE IF EXISTS \`${conn.config.database}\``).catch(() => undefined);
    await conn.end();
  }
});

describe("sharded message store on 3 MariaDB instances", () => {
  it("spreads 200 conversations over every instance, each on the shard its id picks", async () => {
    expect(instanceIds()).toHaveLength(3);
    const convIds: string[] = [];
    for (let i = 0; i < 200; i++) {
      const [a, b] = [newId(), newId()];
      const { message: stored } = await messages.append(message(a, b, `hello ${i}`));
      convIds.push(stored.convId);
    }
    const perInstance: Record<string, number> = {};
    for (const id of instanceIds()) {
      const rows = await onInstance(id, "SELECT conv_id FROM conversations");
      perInstance[id] = rows.length;
      for (const row of rows) expect(shards.instanceFor(row.conv_id).id).toBe(id);
    }
    console.log("200 conversations per MySQL instance:", perInstance);
    for (const id of instanceIds()) expect(perInstance[id]).toBeGreaterThan(0);
    expect(Object.values(perInstance).reduce((a, b) => a + b, 0)).toBe(200);
  });

  it("keeps every message of a conversation on its shard and nowhere else", async () => {
    const [a, b] = [newId(), newId()];
    for (let i = 1; i <= 20; i++) await messages.append(message(i % 2 ? a : b, i % 2 ? b : a, `m${i}`));
    const convId = convIdForPair(a, b);
    const home = shards.instanceFor(convId).id;
    for (const id of instanceIds()) {
      const rows = await onInstance(id, "SELECT seq FROM messages WHERE conv_id = ? ORDER BY seq", [convId]);
      expect(rows.map((r) => Number(r.seq))).toEqual(id === home ? Array.from({ length: 20 }, (_, i) => i + 1) : []);
    }
    const page = await messages.history(a, convId, { afterSeq: 0, beforeSeq: 0, limit: 50 });
    expect(page.map((m) => m.text)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
  });

  it("answers pending across shards from the user's index and acks per shard", async () => {
    const me = newId();
    const peers = Array.from({ length: 12 }, newId);
    for (const peer of peers) {
      await messages.append(message(peer, me, `${peer}:1`));
      await messages.append(message(peer, me, `${peer}:2`));
    }
    const shardsUsed = new Set(peers.map((p) => shards.instanceFor(convIdForPair(p, me)).id));
    expect(shardsUsed.size).toBeGreaterThan(1);
    // The index of my conversations lives on my uid's shard only.
    for (const id of instanceIds()) {
      const rows = await onInstance(id, "SELECT conv_id FROM user_conversations WHERE uid = ?", [me]);
      expect(rows.length).toBe(id === shards.instanceFor(me).id ? 12 : 0);
    }

    const all = await messages.pending(me, 100);
    expect(all.more).toBe(false);
    expect(all.messages).toHaveLength(24);
    const convOrder = [...new Set(all.messages.map((m) => m.convId))];
    expect(convOrder).toEqual([...convOrder].sort());
    for (const convId of convOrder) {
      expect(all.messages.filter((m) => m.convId === convId).map((m) => m.seq)).toEqual([1, 2]);
    }

    const page = await messages.pending(me, 5);
    expect(page.messages).toHaveLength(5);
    expect(page.more).toBe(true);
    expect(page.messages).toEqual(all.messages.slice(0, 5));

    await messages.ack(
      me,
      all.messages.slice(0, 12).map((m) => ({ convId: m.convId, seq: m.seq })),
    );
    const rest = await messages.pending(me, 100);
    expect(rest.messages).toEqual(all.messages.slice(12));
    await messages.ack(
      me,
      rest.messages.map((m) => ({ convId: m.convId, seq: m.seq })),
    );
    expect(await messages.pending(me, 100)).toEqual({ messages: [], more: false });
  });
});

describe("sharded user store", () => {
  const user = (name: string, email: string) => ({
    uid: newId(),
    name,
    email,
    passwordHash: "scrypt$x",
    createdAt: 1_700_000_000_000,
  });

  it("places users by uid and finds them by name and email from any shard", async () => {
    const created = Array.from({ length: 30 }, (_, i) => user(`user${i}`, `User${i}@Example.com`));
    for (const u of created) await users.create(u);
    for (const id of instanceIds()) {
      const rows = await onInstance(id, "SELECT uid FROM users");
      for (const row of rows) expect(shards.instanceFor(String(row.uid)).id).toBe(id);
      expect(rows.length).toBeGreaterThan(0);
    }
    for (const u of created.slice(0, 5)) {
      expect((await users.byName(u.name.toUpperCase()))?.uid).toBe(u.uid);
      expect((await users.byEmail(u.email))?.uid).toBe(u.uid);
      expect((await users.byUid(u.uid))?.email).toBe(u.email.toLowerCase());
    }
    const some = created.slice(0, 10).map((u) => u.uid);
    expect(await users.existing([...some, "1", "2"])).toEqual(new Set(some));
  });

  it("keeps names and emails unique across shards, and a refused create leaves nothing behind", async () => {
    await users.create(user("Alice", "alice@example.com"));
    expect(await rejection(users.create(user("alice", "other@example.com")))).toBe(ErrorCode.USER_EXISTS);
    expect(await rejection(users.create(user("ALİCE-not", "ALICE@example.com")))).toBe(ErrorCode.EMAIL_EXISTS);
    // The name claimed before the email was refused was given back (compensation).
    const again = user("ALİCE-not", "alice2@example.com");
    await users.create(again);
    expect((await users.byName("ALİCE-not"))?.uid).toBe(again.uid);
    expect(await users.byName("nobody")).toBeNull();
  });

  it("deletes a user with its name and email index rows, so both register again (issue 17)", async () => {
    const gone = user("Leaving", "Leaving@example.com");
    await users.create(gone);
    expect(await users.delete(gone.uid)).toBe(true);
    expect(await users.byUid(gone.uid)).toBeNull();
    expect(await users.byName("leaving")).toBeNull();
    for (const id of instanceIds()) {
      expect(await onInstance(id, "SELECT * FROM user_names WHERE uid = ?", [gone.uid])).toEqual([]);
      expect(await onInstance(id, "SELECT * FROM user_emails WHERE uid = ?", [gone.uid])).toEqual([]);
    }
    expect(await users.delete(gone.uid)).toBe(false);
    const back = user("LEAVING", "leaving@example.com");
    await users.create(back);
    expect((await users.byEmail("leaving@example.com"))?.uid).toBe(back.uid);
  });
});

describe("a shard that is down", () => {
  it("fails only its conversations with STORAGE_UNAVAILABLE; the others keep working", async () => {
    const down = "s2";
    const upId = () => {
      for (;;) {
        const id = newId();
        if (shards.instanceFor(id).id !== down) return id;
      }
    };
    // A user (on a healthy shard) with one conversation on the shard that goes down, one elsewhere.
    const me = upId();
    let onDown: Uid | undefined;
    let onUp: Uid | undefined;
    while (!onDown || !onUp) {
      const peer = upId();
      const home = shards.instanceFor(convIdForPair(me, peer)).id;
      if (home === down) onDown ??= peer;
      else onUp ??= peer;
    }
    await messages.append(message(onDown, me, "before"));
    await messages.append(message(onUp, me, "before"));

    const closed = await freePort();
    const urls = config.MYSQL_SHARDS.split(",");
    urls[2] = `mysql://root@127.0.0.1:${closed}/nothing`;
    const broken = await Shards.open({ ...config, MYSQL_SHARDS: urls.join(",") });
    try {
      const brokenMessages = new ShardedMessageStore(broken);
      expect(await rejection(brokenMessages.append(message(onDown, me, "during")))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
      expect(
        await rejection(
          brokenMessages.history(me, convIdForPair(me, onDown), { afterSeq: 0, beforeSeq: 0, limit: 10 }),
        ),
      ).toBe(ErrorCode.STORAGE_UNAVAILABLE);
      const ok = await brokenMessages.append(message(onUp, me, "during"));
      expect(ok.message.seq).toBe(2);
      // pending answers what the healthy shards hold, with more: the down shard's messages wait.
      const pending = await brokenMessages.pending(me, 100);
      expect(pending.messages.map((m) => m.text)).toEqual(["before", "during"]);
      expect(pending.messages.every((m) => m.convId === convIdForPair(me, onUp))).toBe(true);
      expect(pending.more).toBe(true);
      // A client syncing through a node: it gets those, and once they are acked only the shard
      // that is down may hold more, so the next page is its error, never "nothing more" (a
      // client told that would stop syncing and miss its messages). syncAll answers what came.
      const node = await startMemoryNode({}, { messages: brokenMessages });
      try {
        const { client } = await node.user("me", me);
        const incomplete: AppError[] = [];
        client.on("syncIncomplete", (err) => incomplete.push(err));
        expect((await client.syncAll()).map((m) => m.text)).toEqual(["before", "during"]);
        expect(incomplete.map((e) => e.code)).toEqual([ErrorCode.STORAGE_UNAVAILABLE]);
        expect(await rejection(brokenMessages.pending(me, 100))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
      } finally {
        await node.close();
      }
    } finally {
      await broken.close();
    }
    // Back up: the first shard's message was kept and is pending too.
    const after = await messages.pending(me, 100);
    expect(after.messages.filter((m) => m.convId === convIdForPair(me, onDown)).map((m) => m.text)).toEqual(["before"]);
  });
});

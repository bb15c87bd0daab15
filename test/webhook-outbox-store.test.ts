import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, uidOf } from "../src/ids/identifiers.js";
import { onePool } from "../src/storage/mysql/block-store.js";
import { MysqlGroupStore } from "../src/storage/mysql/group-store.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { MysqlWebhookOutboxStore } from "../src/storage/mysql/webhook-outbox-store.js";
import type {
  GroupStore,
  MessageEffect,
  MessageStore,
  OutboxEvent,
  Uid,
  WebhookOutboxStore,
} from "../src/storage/ports.js";
import { shardedKeyPlacement } from "../src/storage/sharded/block-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { SqliteGroupStore } from "../src/storage/sqlite/group-store.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { SqliteWebhookOutboxStore } from "../src/storage/sqlite/webhook-outbox-store.js";
import { AFTER_SEND_EVENT } from "../src/storage/webhook-outbox.js";
import { shardPorts } from "./helpers/chat-cluster.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { textMessage } from "./helpers/messages.js";
import { openTestShards } from "./helpers/shards.js";
import { tempSqlite } from "./helpers/sqlite.js";
import { codeOf } from "./helpers/waits.js";

/**
 * The webhook outbox (issue 18) through the store API, the same contract on SQLite, one MySQL
 * and sharded MySQL (group commit on): a stored message's after-send row is written in the
 * transaction that stores it (1:1, in a group-commit batch, and group messages), a resend or a
 * refused message writes none, a store built without it writes nothing, and the dispatcher's
 * reads and writes (scan in key order, retry, dead, remove).
 */

interface OutboxBackend {
  messages: MessageStore;
  groups: GroupStore;
  /** A message store on the same database built without the outbox (the default). */
  plainMessages: MessageStore;
  outbox: WebhookOutboxStore;
  /** Every row of the table for key, dead or not, wherever it is. */
  raw(key: string): Promise<Record<string, unknown>[]>;
  /** Sharded: the instance owning key. */
  ownerOf?(key: string): string;
  /** MySQL: the sizes of the group-commit batches of appends so far. */
  batches?: number[];
  close(): Promise<void>;
}

interface Backend {
  name: string;
  open(): Promise<OutboxBackend>;
}

/** The backend of one describe.each case, opened before its tests and closed after them. */
function openedForSuite(backend: Backend): OutboxBackend {
  const opened = {} as OutboxBackend;
  beforeAll(async () => {
    Object.assign(opened, await backend.open());
  }, 300_000);
  afterAll(async () => {
    await opened.close?.();
  });
  return opened;
}

const GROUP_COMMIT = { batchMax: 8, batchConcurrency: 1 };

function observeInto(batches: number[]) {
  return (op: "append" | "ack", size: number) => {
    if (op === "append") batches.push(size);
  };
}

const sqlite: Backend = {
  name: "sqlite",
  async open() {
    const t = tempSqlite("sc-outbox-");
    const o: OutboxBackend = {
      messages: new SqliteMessageStore(t.db, { afterSendOutbox: true }),
      groups: new SqliteGroupStore(t.db, { afterSendOutbox: true }),
      plainMessages: new SqliteMessageStore(t.db),
      outbox: new SqliteWebhookOutboxStore(t.db),
      raw: async (key) =>
        t.db.prepare("SELECT * FROM webhook_outbox WHERE place_key = ?").all(key) as Record<string, unknown>[],
      close: async () => t.remove(),
    };
    return o;
  },
};

const mysql: Backend = {
  name: "mysql",
  async open() {
    const config = testConfig();
    await migrate(config.MYSQL_URL);
    const pool = createPool(config);
    const batches: number[] = [];
    const o: OutboxBackend = {
      batches,
      messages: new MysqlMessageStore(pool, {
        ...GROUP_COMMIT,
        afterSendOutbox: true,
        observeBatch: observeInto(batches),
      }),
      groups: new MysqlGroupStore(pool, { afterSendOutbox: true }),
      plainMessages: new MysqlMessageStore(pool, GROUP_COMMIT),
      outbox: new MysqlWebhookOutboxStore(onePool(pool)),
      raw: async (key) =>
        (await pool.query<RowDataPacket[]>("SELECT * FROM webhook_outbox WHERE place_key = ?", [key]))[0],
      close: async () => {
        await pool.end();
        await dropTestDatabase(config);
      },
    };
    return o;
  },
};

const sharded: Backend = {
  name: "sharded mysql",
  async open() {
    const { shards, close } = await openTestShards(await shardPorts());
    const batches: number[] = [];
    const o: OutboxBackend = {
      batches,
      messages: new ShardedMessageStore(shards, {
        ...GROUP_COMMIT,
        afterSendOutbox: true,
        observeBatch: observeInto(batches),
      }),
      groups: new ShardedGroupStore(shards, { afterSendOutbox: true }),
      plainMessages: new ShardedMessageStore(shards, GROUP_COMMIT),
      outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(shards)),
      async raw(key) {
        const rows: Record<string, unknown>[] = [];
        for (const instance of shards.map.instances) {
          const [found] = await shards
            .pool(instance.id)
            .query<RowDataPacket[]>("SELECT *, ? AS instance FROM webhook_outbox WHERE place_key = ?", [
              instance.id,
              key,
            ]);
          rows.push(...found);
        }
        return rows;
      },
      ownerOf: (key) => shards.instanceFor(key).id,
      close,
    };
    return o;
  },
};

describe.each([sqlite, mysql, sharded])("webhook outbox on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_480_000_000_000_000_000n;
  const id = () => uidOf(next++);
  const SENT_AT = 1_700_000_000_000;

  /** Every row not dead on every instance, in each instance's scan order. */
  async function scanAll(limit = 1000): Promise<(OutboxEvent & { instance: string })[]> {
    const all: (OutboxEvent & { instance: string })[] = [];
    for (const instance of s.outbox.instances()) {
      for (const e of await s.outbox.scan(instance, "", limit)) all.push({ ...e, instance });
    }
    return all;
  }
  const rowsOf = async (key: string) => (await scanAll()).filter((e) => e.placeKey === key);

  it("writes each stored message's after-send row with it, in seq order, also in a group-commit batch", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    // Called together: MySQL stores them in one batch transaction.
    const stored = await Promise.all(
      ["one", "two", "three"].map((text, i) =>
        s.messages.append(
          textMessage(i === 1 ? b : a, i === 1 ? a : b, text, {
            msgId: id(),
            clientMsgId: `c-${i}`,
            sentAtMs: SENT_AT,
          }),
        ),
      ),
    );
    const rows = await rowsOf(convId);
    expect(rows.map((r) => [r.lane, r.pos, r.eventId, r.type])).toEqual([
      [0, "1", `msg_${convId}_1`, AFTER_SEND_EVENT],
      [0, "2", `msg_${convId}_2`, AFTER_SEND_EVENT],
      [0, "3", `msg_${convId}_3`, AFTER_SEND_EVENT],
    ]);
    const data = JSON.parse(rows[1]?.payloadJson ?? "{}");
    const second = stored[1]?.message;
    expect(data).toEqual({
      convId,
      seq: second?.seq,
      msgId: second?.msgId,
      sender: b,
      recipient: a,
      clientMsgId: "c-1",
      kind: "text",
      text: "two",
      sentAtMs: SENT_AT,
    });
    expect(rows.every((r) => r.attempts === 0 && r.nextAt === 0 && r.deliveredTo.length === 0)).toBe(true);
    // MySQL: the three went in batches (the first alone, the two that waited for it together).
    if (s.batches) expect(Math.max(...s.batches)).toBeGreaterThan(1);
    // Sharded: beside the conversation, nowhere else.
    if (s.ownerOf) expect(new Set(rows.map((r) => r.instance))).toEqual(new Set([s.ownerOf(convId)]));
  });

  it("writes a change's event row (edit, reaction, recall) in the conversation's seq order, an edit with its text", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    for (const text of ["first", "second"]) {
      await s.messages.append(textMessage(a, b, text, { msgId: id(), clientMsgId: text, sentAtMs: SENT_AT }));
    }
    const change = (targetSeq: number, effect: MessageEffect) =>
      s.messages.change({ convId, targetSeq, msgId: id(), actor: a, sentAtMs: SENT_AT + 1, decide: () => effect });
    await change(1, { kind: "edit", text: "first, edited", atMs: SENT_AT + 1 });
    await change(2, { kind: "react", emoji: "👍", add: true, maxDistinct: 10 });
    await change(2, { kind: "recall" });
    const rows = await rowsOf(convId);
    const data = rows.map((r) => JSON.parse(r.payloadJson));
    expect(rows.map((r, i) => [r.pos, data[i].kind])).toEqual([
      ["1", "text"],
      ["2", "text"],
      ["3", "edit"],
      ["4", "reaction"],
      ["5", "recall"],
    ]);
    expect(data[2]).toMatchObject({ seq: 3, sender: a, targetSeq: 1, text: "first, edited" });
    expect(data[3]).toMatchObject({ targetSeq: 2, reaction: { emoji: "👍", add: true } });
    expect(data[4]).toMatchObject({ targetSeq: 2, text: "" });
  });

  it("writes no second row for a resend, and none for a store built without the outbox", async () => {
    const [a, b, c] = [id(), id(), id()];
    const m = textMessage(a, b, "hi", { msgId: id(), clientMsgId: "resent", sentAtMs: SENT_AT });
    await s.messages.append(m);
    // The resend shares a batch with a new message (both wait behind the lead): MySQL's batch is
    // refused and each goes alone (the one-message transaction), the new one with its row.
    const [, again, fresh] = await Promise.all([
      s.messages.append(textMessage(a, b, "lead", { msgId: id(), clientMsgId: "lead", sentAtMs: SENT_AT })),
      s.messages.append({ ...m, msgId: id() }),
      s.messages.append(textMessage(a, b, "new", { msgId: id(), clientMsgId: "fresh", sentAtMs: SENT_AT })),
    ]);
    expect([again.duplicate, fresh.duplicate]).toEqual([true, false]);
    expect((await s.raw(m.convId)).map((r) => Number(r.pos)).sort()).toEqual([1, 2, 3]);
    const plain = textMessage(a, c, "no hooks here", { msgId: id(), clientMsgId: "plain", sentAtMs: SENT_AT });
    await s.plainMessages.append(plain);
    expect(await s.raw(plain.convId)).toEqual([]);
  });

  it("writes a group message's row with it, and none for a refused one", async () => {
    const [owner, member, outsider] = [id(), id(), id()];
    const groupId = id();
    await s.groups.create({ groupId, name: "hooks", owner, members: [member], maxMembers: 10 });
    const convId = groupConvId(groupId);
    const base = { groupId, kind: MessageKind.TEXT, sentAtMs: SENT_AT };
    const { message } = await s.groups.append({
      ...base,
      msgId: id(),
      sender: member,
      clientMsgId: "g1",
      text: "hello all",
    });
    expect(
      await codeOf(s.groups.append({ ...base, msgId: id(), sender: outsider, clientMsgId: "g2", text: "let me in" })),
    ).toBe(ErrorCode.NOT_GROUP_MEMBER);
    const rows = await rowsOf(convId);
    expect(rows.map((r) => r.eventId)).toEqual([`msg_${convId}_${message.seq}`]);
    expect(JSON.parse(rows[0]?.payloadJson ?? "{}")).toMatchObject({
      convId,
      groupId,
      sender: member,
      text: "hello all",
    });
    expect(JSON.parse(rows[0]?.payloadJson ?? "{}").recipient).toBeUndefined();
  });

  it("adds events, scans in key order after a cursor, retries, leaves dead rows out, removes", async () => {
    const [u1, u2] = [id(), id()].sort((x, y) => (x < y ? -1 : 1)) as [Uid, Uid];
    const ev = (placeKey: string, pos: string) => ({
      placeKey,
      pos,
      eventId: `evt_${pos}`,
      type: "user.online",
      payloadJson: JSON.stringify({ uid: placeKey }),
      createdAt: SENT_AT,
    });
    // Out of order on purpose: the scan answers by (key, lane, pos), pos as a number (9 before 10).
    await s.outbox.add([ev(u2, "30"), ev(u1, "20"), ev(u1, "10"), ev(u1, "9")]);
    await s.outbox.add([ev(u1, "10")]); // again: ignored, the key is taken
    const mine = (await scanAll()).filter((e) => e.placeKey === u1 || e.placeKey === u2);
    const byKey = (k: string) => mine.filter((e) => e.placeKey === k).map((e) => [e.lane, e.pos, e.eventId]);
    expect(byKey(u1)).toEqual([
      [1, "9", "evt_9"],
      [1, "10", "evt_10"],
      [1, "20", "evt_20"],
    ]);
    expect(byKey(u2)).toEqual([[1, "30", "evt_30"]]);
    // After u1's key, u1's rows are not read again.
    const instance1 = mine.find((e) => e.placeKey === u1)?.instance as string;
    expect((await s.outbox.scan(instance1, u1, 1000)).some((e) => e.placeKey === u1)).toBe(false);

    const first = mine.find((e) => e.pos === "10") as OutboxEvent;
    await s.outbox.retry(instance1, first, {
      attempts: 1,
      nextAt: SENT_AT + 5000,
      deliveredTo: ["http://a/hook"],
      dead: false,
      error: "HTTP 500",
    });
    const retried = (await rowsOf(u1)).find((e) => e.pos === "10");
    expect(retried).toMatchObject({ attempts: 1, nextAt: SENT_AT + 5000, deliveredTo: ["http://a/hook"] });
    await s.outbox.retry(instance1, first, {
      attempts: 2,
      nextAt: 0,
      deliveredTo: [],
      dead: true,
      error: "x".repeat(400),
    });
    // Dead: kept (with its error, cut to the column), but not scanned.
    expect((await rowsOf(u1)).map((e) => e.pos)).toEqual(["9", "20"]);
    await s.outbox.remove(instance1, [{ placeKey: u1, lane: 1, pos: "9" }]);
    const deadRow = (await s.raw(u1)).find((r) => String(r.pos) === "10");
    expect(Number(deadRow?.dead)).toBe(1);
    expect(String(deadRow?.last_error).length).toBe(255);
    // Several keys in one statement; one of them already gone.
    await s.outbox.remove(instance1, [
      { placeKey: u1, lane: 1, pos: "20" },
      { placeKey: u1, lane: 1, pos: "9" },
    ]);
    expect(await rowsOf(u1)).toEqual([]);
    expect((await s.raw(u1)).length).toBe(1);
  });
});

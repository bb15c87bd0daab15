import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { startChangeRecord, stopChangeRecord } from "../sharding/change-record.js";
import { PLACEMENTS } from "../sharding/placements.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, requireUid, uidOf } from "../src/ids/identifiers.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool } from "../src/storage/mysql/pool.js";
import type { MessageStore, NewMessage, Uid } from "../src/storage/ports.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { textMessage } from "./helpers/messages.js";
import { freePort } from "./helpers/ports.js";
import { tempSqlite } from "./helpers/sqlite.js";

/** A message store on a fresh database, with a way to count rows behind its back. */
interface OpenedStore {
  store: MessageStore;
  /** The first row's column n of a query (both backends speak this SQL). */
  rowCount(sql: string, params: unknown[]): Promise<number>;
  close(): Promise<void>;
}

interface Backend {
  name: string;
  open(): Promise<OpenedStore>;
  /** A store whose database cannot answer (unreachable server, closed file). */
  unavailable(): Promise<OpenedStore>;
}

let mysqlConfig: Config | undefined;

/** MySQL, each message in its own transaction or (batchMax > 1) group-committed in batches. */
function mysqlBackend(name: string, batching: { batchMax: number; batchConcurrency: number }): Backend {
  return {
    name,
    async open() {
      const config = testConfig();
      mysqlConfig = config;
      await migrate(config.MYSQL_URL);
      const pool = createPool(config);
      return {
        store: new MysqlMessageStore(pool, { deadlockRetries: config.MYSQL_DEADLOCK_RETRIES, ...batching }),
        async rowCount(sql, params) {
          const [rows] = await pool.query<RowDataPacket[]>(sql, params);
          return Number(rows[0]?.n);
        },
        async close() {
          await pool.end();
          await dropTestDatabase(config);
        },
      };
    },
    async unavailable() {
      const url = new URL((mysqlConfig ?? testConfig()).MYSQL_URL);
      url.port = String(await freePort());
      const deadPool = createPool({ MYSQL_URL: url.toString(), MYSQL_POOL_SIZE: 2 });
      return {
        store: new MysqlMessageStore(deadPool, batching),
        rowCount: async () => Number.NaN,
        close: () => deadPool.end(),
      };
    },
  };
}

const backends: Backend[] = [
  mysqlBackend("mysql", { batchMax: 1, batchConcurrency: 1 }),
  // Concurrent appends meet in batches of up to 8, two batches at a time.
  mysqlBackend("mysql, group commit", { batchMax: 8, batchConcurrency: 2 }),
  {
    name: "sqlite",
    async open() {
      const sqlite = tempSqlite("sc-messages-");
      return {
        store: new SqliteMessageStore(sqlite.db),
        async rowCount(sql, params) {
          const row = sqlite.db.prepare(sql).get(...params) as { n?: unknown } | undefined;
          return Number(row?.n);
        },
        async close() {
          sqlite.remove();
        },
      };
    },
    async unavailable() {
      const sqlite = tempSqlite("sc-messages-closed-");
      const store = new SqliteMessageStore(sqlite.db);
      sqlite.db.close();
      return { store, rowCount: async () => Number.NaN, close: async () => sqlite.remove() };
    },
  },
];

// Snowflake-sized ids (> 2^53) so a lossy number conversion anywhere would show.
let nextId = 900719925474099000n;
const newId = () => uidOf(nextId++);
const newUid = newId;

function message(sender: Uid, recipient: Uid, text: string, clientMsgId = `c-${newId()}`): NewMessage {
  return textMessage(sender, recipient, text, {
    msgId: newId(),
    clientMsgId,
    sentAtMs: 1_700_000_000_000 + Number(nextId % 1000n),
  });
}

async function codeOfRejection(promise: Promise<unknown>): Promise<ErrorCode | "resolved" | "not an AppError"> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    return err instanceof AppError ? err.code : "not an AppError";
  }
}

describe("convIdForPair", () => {
  it("orders uids numerically, not as strings", () => {
    expect(convIdForPair("10", "9")).toBe("p:9:10");
    expect(convIdForPair("9", "10")).toBe("p:9:10");
    expect(convIdForPair("18446744073709551615", "18446744073709551614")).toBe(
      "p:18446744073709551614:18446744073709551615",
    );
  });

  it("takes only checked uids: the edge refuses one that is not a decimal string", () => {
    expect(() => requireUid("abc", "toUid")).toThrowError(AppError);
  });
});

describe.each(backends)("MessageStore on $name", (backend) => {
  let opened: OpenedStore;
  let store: MessageStore;

  async function sendAll(sender: Uid, recipient: Uid, count: number): Promise<void> {
    for (let i = 1; i <= count; i++) await store.append(message(sender, recipient, `${sender}#${i}`));
  }

  function rowCount(sql: string, params: unknown[]): Promise<number> {
    return opened.rowCount(sql, params);
  }

  beforeAll(async () => {
    opened = await backend.open();
    store = opened.store;
  });

  afterAll(async () => {
    await opened?.close();
  });

  describe("append", () => {
    it("numbers a conversation's messages 1..n without gaps and maps every field", async () => {
      const [a, b] = [newUid(), newUid()];
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await store.append(message(a, b, `hello ${i}`)));
      expect(results.map((r) => r.message.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(results.every((r) => !r.duplicate)).toBe(true);

      const sent = message(a, b, "fields ✓");
      const { message: answered } = await store.append(sent);
      const [stored] = await store.history(b, sent.convId, { afterSeq: 5, beforeSeq: 0, limit: 10 });
      const expected = {
        convId: sent.convId,
        msgId: sent.msgId,
        seq: 6,
        sender: a,
        recipient: b,
        clientMsgId: sent.clientMsgId,
        kind: MessageKind.TEXT,
        text: "fields ✓",
        sentAtMs: String(sent.sentAtMs),
      };
      expect(answered).toEqual(expected);
      expect(stored).toEqual(expected);
    });

    it("gives 30 concurrent appends to one conversation the seqs 1..30, each once", async () => {
      const [a, b] = [newUid(), newUid()];
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => store.append(message(i % 2 ? a : b, i % 2 ? b : a, `m${i}`))),
      );
      const seqs = results.map((r) => r.message.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const convId = convIdForPair(a, b);
      expect(await rowCount("SELECT COUNT(*) AS n FROM messages WHERE conv_id = ?", [convId])).toBe(30);
      expect(await rowCount("SELECT last_seq AS n FROM conversations WHERE conv_id = ?", [convId])).toBe(30);
    });

    it("stores a resent clientMsgId once and answers the stored message as a duplicate", async () => {
      const [a, b] = [newUid(), newUid()];
      const first = await store.append(message(a, b, "once", "resend-1"));
      const again = await store.append(message(a, b, "once", "resend-1"));
      expect(first.duplicate).toBe(false);
      expect(again.duplicate).toBe(true);
      expect(again.message).toEqual(first.message);
      const convId = convIdForPair(a, b);
      expect(await rowCount("SELECT COUNT(*) AS n FROM messages WHERE conv_id = ?", [convId])).toBe(1);
    });

    it("keeps one row for 10 concurrent resends, and the losers give their seqs back", async () => {
      const [a, b] = [newUid(), newUid()];
      const results = await Promise.all(
        Array.from({ length: 10 }, () => store.append(message(a, b, "racing", "same-client-id"))),
      );
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
      const msgIds = new Set(results.map((r) => r.message.msgId));
      expect(msgIds.size).toBe(1);
      expect(results.every((r) => r.message.seq === 1)).toBe(true);
      const convId = convIdForPair(a, b);
      expect(await rowCount("SELECT COUNT(*) AS n FROM messages WHERE conv_id = ?", [convId])).toBe(1);
      const next = await store.append(message(a, b, "after the race"));
      expect(next.message.seq).toBe(2);
    });

    it("lets the same clientMsgId be used by the other member of the conversation", async () => {
      const [a, b] = [newUid(), newUid()];
      const fromA = await store.append(message(a, b, "a", "shared-id"));
      const fromB = await store.append(message(b, a, "b", "shared-id"));
      expect(fromB.duplicate).toBe(false);
      expect(fromB.message.seq).toBe(fromA.message.seq + 1);
    });

    it("tells clientMsgIds apart byte for byte: trailing spaces and case make another message", async () => {
      const [a, b] = [newUid(), newUid()];
      const ids = ["x", "x ", "x  ", "X", " x"];
      const stored = [];
      for (const id of ids) stored.push(await store.append(message(a, b, `for ${JSON.stringify(id)}`, id)));
      expect(stored.map((r) => r.duplicate)).toEqual(ids.map(() => false));
      expect(stored.map((r) => r.message.clientMsgId)).toEqual(ids);
      // And each resend finds its own message.
      const again = await store.append(message(a, b, "resend", "x "));
      expect(again).toMatchObject({ duplicate: true, message: { seq: stored[1]?.message.seq, clientMsgId: "x " } });
    });

    it("refuses a clientMsgId longer than its column instead of truncating it", async () => {
      const [a, b] = [newUid(), newUid()];
      expect(await codeOfRejection(store.append(message(a, b, "x", "c".repeat(65))))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(await codeOfRejection(store.append(message(a, b, "x", "")))).toBe(ErrorCode.INVALID_ARGUMENT);
      // 64 characters outside the BMP fit the column: the limit counts code points.
      const emoji = await store.append(message(a, b, "x", "😀".repeat(64)));
      expect(emoji.message.clientMsgId).toBe("😀".repeat(64));
    });
  });

  describe("pending and ack", () => {
    it("lists exactly the recipient's unacked messages, conversation then seq, with more", async () => {
      const [a, b, c] = [newUid(), newUid(), newUid()];
      await sendAll(a, b, 3);
      await sendAll(c, b, 2);
      const convAB = convIdForPair(a, b);
      const convCB = convIdForPair(c, b);
      const expected = [
        ...[1, 2, 3].map((seq) => ({ convId: convAB, seq, text: `${a}#${seq}` })),
        ...[1, 2].map((seq) => ({ convId: convCB, seq, text: `${c}#${seq}` })),
      ].sort((x, y) => (x.convId < y.convId ? -1 : x.convId > y.convId ? 1 : x.seq - y.seq));

      const all = await store.pending(b, 100);
      expect(all.more).toBe(false);
      expect(all.messages.map((m) => ({ convId: m.convId, seq: m.seq, text: m.text }))).toEqual(expected);

      const firstPage = await store.pending(b, 2);
      expect(firstPage.more).toBe(true);
      expect(firstPage.messages.map((m) => ({ convId: m.convId, seq: m.seq, text: m.text }))).toEqual(
        expected.slice(0, 2),
      );

      const exact = await store.pending(b, 5);
      expect(exact.more).toBe(false);
      expect(exact.messages).toHaveLength(5);
    });

    it("does not list the sender's own messages to the sender, but lists the replies", async () => {
      const [a, b] = [newUid(), newUid()];
      await store.append(message(a, b, "from a"));
      expect((await store.pending(a, 10)).messages).toEqual([]);
      await store.append(message(b, a, "reply from b"));
      const pending = await store.pending(a, 10);
      expect(pending.messages.map((m) => [m.seq, m.text])).toEqual([[2, "reply from b"]]);
    });

    it("keeps an unacked incoming message pending when its receiver replies before acking it", async () => {
      const [a, b] = [newUid(), newUid()];
      await store.append(message(b, a, "from b, not yet acked by a"));
      await store.append(message(a, b, "a answers anyway"));
      const pending = await store.pending(a, 10);
      expect(pending.messages.map((m) => m.seq)).toEqual([1, 2]);
      expect(pending.messages[0]?.text).toBe("from b, not yet acked by a");
    });

    it("advances the delivered cursor, never backwards and never past the last message", async () => {
      const [a, b] = [newUid(), newUid()];
      const convId = convIdForPair(a, b);
      await sendAll(a, b, 5);

      await store.ack(b, [{ convId, seq: 3 }]);
      expect((await store.pending(b, 10)).messages.map((m) => m.seq)).toEqual([4, 5]);

      await store.ack(b, [{ convId, seq: 1 }]);
      expect((await store.pending(b, 10)).messages.map((m) => m.seq)).toEqual([4, 5]);

      await store.ack(b, [{ convId, seq: 99 }]);
      expect((await store.pending(b, 10)).messages).toEqual([]);
      expect(
        await rowCount("SELECT delivered_seq AS n FROM conversation_members WHERE conv_id = ? AND uid = ?", [
          convId,
          b,
        ]),
      ).toBe(5);
      // Because the cursor stopped at 5, the next message is still delivered.
      await store.append(message(a, b, "sixth"));
      expect((await store.pending(b, 10)).messages.map((m) => m.seq)).toEqual([6]);
    });

    it("applies many acks arriving at once, each to its own member and conversation only", async () => {
      const hub = newUid();
      const peers = Array.from({ length: 12 }, () => newUid());
      for (const peer of peers) await sendAll(peer, hub, 3);
      const outsider = newUid();
      // Acks of different users and conversations at once (group commit shares one statement),
      // one of them from a user who is in none of these conversations.
      await Promise.all([
        ...peers.map((peer, i) => store.ack(hub, [{ convId: convIdForPair(peer, hub), seq: 1 + (i % 3) }])),
        store.ack(outsider, [{ convId: convIdForPair(peers[0] as Uid, hub), seq: 3 }]),
      ]);
      const left = (await store.pending(hub, 100)).messages;
      for (const [i, peer] of peers.entries()) {
        const seqs = left.filter((m) => m.convId === convIdForPair(peer, hub)).map((m) => m.seq);
        expect(seqs).toEqual([1, 2, 3].slice(1 + (i % 3)));
      }
      expect(await rowCount("SELECT COUNT(*) AS n FROM conversation_members WHERE uid = ?", [outsider])).toBe(0);
    });

    it("ignores acks for conversations the user is not in", async () => {
      const [a, b, outsider] = [newUid(), newUid(), newUid()];
      const convId = convIdForPair(a, b);
      await sendAll(a, b, 2);
      await store.ack(outsider, [
        { convId, seq: 2 },
        { convId: "p:no:such", seq: 1 },
      ]);
      expect((await store.pending(b, 10)).messages.map((m) => m.seq)).toEqual([1, 2]);
      expect(await rowCount("SELECT COUNT(*) AS n FROM conversation_members WHERE uid = ?", [outsider])).toBe(0);
    });
  });

  describe("history", () => {
    it("pages backwards from the newest and forwards after a seq, always ascending", async () => {
      const [a, b] = [newUid(), newUid()];
      const convId = convIdForPair(a, b);
      await sendAll(a, b, 10);
      const seqs = async (afterSeq: number, beforeSeq: number, limit: number) =>
        (await store.history(b, convId, { afterSeq, beforeSeq, limit })).map((m) => m.seq);

      expect(await seqs(0, 0, 3)).toEqual([8, 9, 10]);
      expect(await seqs(0, 8, 3)).toEqual([5, 6, 7]);
      expect(await seqs(0, 3, 5)).toEqual([1, 2]);
      expect(await seqs(0, 1, 5)).toEqual([]);
      expect(await seqs(2, 0, 3)).toEqual([3, 4, 5]);
      expect(await seqs(8, 0, 5)).toEqual([9, 10]);
      expect(await seqs(10, 0, 5)).toEqual([]);
      // The sender reads the same conversation.
      expect((await store.history(a, convId, { afterSeq: 0, beforeSeq: 0, limit: 1 }))[0]?.text).toBe(`${a}#10`);
    });

    it("refuses a user who is not in the conversation with NOT_PARTICIPANT", async () => {
      const [a, b, outsider] = [newUid(), newUid(), newUid()];
      const convId = convIdForPair(a, b);
      await sendAll(a, b, 1);
      const query = { afterSeq: 0, beforeSeq: 0, limit: 10 };
      expect(await codeOfRejection(store.history(outsider, convId, query))).toBe(ErrorCode.NOT_PARTICIPANT);
      expect(await codeOfRejection(store.history(a, "p:no:such", query))).toBe(ErrorCode.NOT_PARTICIPANT);
    });
  });

  describe("a database that cannot answer", () => {
    it("answers STORAGE_UNAVAILABLE from every method instead of crashing", async () => {
      const dead = await backend.unavailable();
      try {
        const [a, b] = [newUid(), newUid()];
        const convId = convIdForPair(a, b);
        expect(await codeOfRejection(dead.store.append(message(a, b, "lost?")))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
        expect(await codeOfRejection(dead.store.pending(b, 10))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
        expect(await codeOfRejection(dead.store.ack(b, [{ convId, seq: 1 }]))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
        expect(await codeOfRejection(dead.store.history(b, convId, { afterSeq: 0, beforeSeq: 0, limit: 5 }))).toBe(
          ErrorCode.STORAGE_UNAVAILABLE,
        );
      } finally {
        await dead.close();
      }
    });
  });
});

describe("MysqlMessageStore while a rebalance records changes", () => {
  it("numbers lone and one-by-one appends and answers resends, with the change record's triggers in place", async () => {
    const config = testConfig();
    await migrate(config.MYSQL_URL);
    const pool = createPool(config);
    // A trigger on conversations makes MariaDB answer insert id 0 for the lone append's
    // LAST_INSERT_ID(last_seq + 1): the store used to fail it with INTERNAL "no seq".
    const slots = Array.from({ length: 1024 }, (_, i) => i);
    await startChangeRecord(pool, PLACEMENTS, slots, 1024);
    try {
      const store = new MysqlMessageStore(pool, { batchMax: 8, batchConcurrency: 2 });
      const [a, b] = [newUid(), newUid()];
      const first = await store.append(message(a, b, "once", "resend-1"));
      // The resend fails its batch; alone it is answered as the stored message.
      const again = await store.append(message(a, b, "once", "resend-1"));
      expect(again).toEqual({ message: first.message, duplicate: true });
      // A batch with a resend in it is refused whole; each message then goes alone, in order.
      const results = await Promise.all([
        store.append(message(a, b, "m2")),
        store.append(message(a, b, "once", "resend-1")),
        store.append(message(b, a, "m3")),
      ]);
      expect(results.map((r) => [r.message.seq, r.duplicate])).toEqual([
        [2, false],
        [1, true],
        [3, false],
      ]);
      const [recorded] = await pool.query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM slot_changes WHERE tbl = 'messages'",
      );
      expect(Number(recorded[0]?.n)).toBe(3);
    } finally {
      await stopChangeRecord(pool, PLACEMENTS);
      await pool.end();
      await dropTestDatabase(config);
    }
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { DeliveredCursors } from "../src/chat/delivered-cursors.js";
import { convIdForPair, type Uid, uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { openSqlite, type SqliteDatabase } from "../src/storage/sqlite/database.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { migrateSqlite } from "../src/storage/sqlite/migrate.js";

const log = createLogger("delivered-cursors-test", "fatal");
const A = "1001";
const B = "1002";
const conv = convIdForPair(A, B);

/** Delivery acks held on the node, written in batches: on a real SQLite store. */
describe("delivered cursors", () => {
  let dir: string;
  let db: SqliteDatabase;
  let store: SqliteMessageStore;
  let msgId = 1;

  const send = async (from: Uid, to: Uid) =>
    (
      await store.append({
        convId: conv,
        members: [from, to],
        msgId: uidOf(msgId++),
        sender: from,
        recipient: to,
        clientMsgId: `c${msgId}`,
        kind: MessageKind.TEXT,
        text: "hi",
        sentAtMs: Date.now(),
      })
    ).message.seq;
  const pendingSeqs = async (uid: Uid) => (await store.pending(uid, 100)).messages.map((m) => m.seq);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "cursors-"));
    db = openSqlite(join(dir, "c.sqlite"));
    migrateSqlite(db);
    store = new SqliteMessageStore(db);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("holds an ack until the next flush, and every later flush writes again", async () => {
    const cursors = new DeliveredCursors(store, 60_000, log);
    await send(A, B);
    await send(A, B);
    await cursors.ack(B, [{ convId: conv, seq: 1 }]);
    expect(await pendingSeqs(B)).toEqual([1, 2]);
    await cursors.flush();
    expect(await pendingSeqs(B)).toEqual([2]);
    // An empty flush in between must not stop the ones after it.
    await cursors.flush();
    await cursors.ack(B, [{ convId: conv, seq: 2 }]);
    await cursors.flush();
    expect(await pendingSeqs(B)).toEqual([]);
  });

  it("writes on its interval and on stop", async () => {
    const cursors = new DeliveredCursors(store, 20, log);
    cursors.start();
    await send(A, B);
    await send(A, B);
    await cursors.ack(B, [{ convId: conv, seq: 1 }]);
    await expect.poll(() => pendingSeqs(B), { timeout: 2000 }).toEqual([2]);
    await cursors.ack(B, [{ convId: conv, seq: 2 }]);
    await cursors.stop();
    expect(await pendingSeqs(B)).toEqual([]);
  });

  it("writes a user's cursors before that user syncs", async () => {
    const cursors = new DeliveredCursors(store, 60_000, log);
    await send(A, B);
    await cursors.ack(B, [{ convId: conv, seq: 1 }]);
    await cursors.flushUser(B);
    expect(await pendingSeqs(B)).toEqual([]);
  });

  it("steps a held cursor over the user's own messages sent after it", async () => {
    const cursors = new DeliveredCursors(store, 60_000, log);
    await send(B, A); // seq 1, to A
    await cursors.ack(A, [{ convId: conv, seq: 1 }]);
    // A answers before its ack reached storage: storage alone cannot step A's cursor over it.
    const own = await send(A, B);
    cursors.sent(A, conv, own);
    await cursors.flush();
    expect(await pendingSeqs(A)).toEqual([]);
  });

  it("writes each ack at once with an interval of 0", async () => {
    const cursors = new DeliveredCursors(store, 0, log);
    await send(A, B);
    await cursors.ack(B, [{ convId: conv, seq: 1 }]);
    expect(await pendingSeqs(B)).toEqual([]);
  });
});

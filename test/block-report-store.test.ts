import { describe, expect, it } from "vitest";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, uidOf } from "../src/ids/identifiers.js";
import type { MessageEffect, NewMessage, ReportRecord, StoredMessage, Uid } from "../src/storage/ports.js";
import { mysqlBackend, openedForSuite, shardedBackend, sqliteBackend } from "./helpers/backends.js";
import { textMessage } from "./helpers/messages.js";
import { codeOf } from "./helpers/waits.js";

/**
 * Blocks and reports (issue 17) through the store API, the same contract on every backend:
 * the block row and its mark on the pair's conversation row, the 1:1 append refusing a blocked
 * pair in its own transaction (also inside a MySQL group-commit batch, whose other messages
 * still succeed with gapless seqs), and reports read newest first from every shard.
 */
const backends = [
  sqliteBackend("sc-blocks-"),
  // Each message in its own transaction (insert() reads the mark with the seq).
  mysqlBackend("mysql", { batchMax: 1, batchConcurrency: 1 }),
  // Group commit: the batch's first round trip reads the marks.
  mysqlBackend("mysql, group commit", { batchMax: 8, batchConcurrency: 1 }),
  shardedBackend({ batchMax: 8, batchConcurrency: 1 }),
];

const SENT_AT = 1_700_000_000_000;

describe.each(backends)("blocks and reports on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_400_000_000_000_000_000n;
  const id = () => uidOf(next++);

  function text(sender: Uid, recipient: Uid, body = "hi", clientMsgId = `c-${id()}`): NewMessage {
    return textMessage(sender, recipient, body, { msgId: id(), clientMsgId, sentAtMs: SENT_AT });
  }

  /** Whether two conversations' appends share one batcher (the same shard, or the one database). */
  const sameBatcher = (a: string, b: string) => s.ownerOf?.(a) === s.ownerOf?.(b);

  const blockedMark = async (a: Uid, b: Uid) => {
    const convId = convIdForPair(a, b);
    const [row] = await s.rows(convId, "SELECT blocked, last_seq FROM conversations WHERE conv_id = ?", [convId]);
    return row ? { blocked: Number(row.blocked), lastSeq: Number(row.last_seq) } : undefined;
  };

  it("blocks one way, marks the pair's conversation row (created empty), and answers both sides", async () => {
    const [a, b, c] = [id(), id(), id()];
    expect(await s.blocks.block(a, b, SENT_AT)).toBe(true);
    // The pair never talked: the row is there now, empty, with a's bit (a < b: bit 1).
    expect(await blockedMark(a, b)).toEqual({ blocked: 1, lastSeq: 0 });
    expect([...(await s.blocks.blockedAmong(a, [b, c]))]).toEqual([b]);
    expect([...(await s.blocks.blockedAmong(b, [a]))]).toEqual([a]);
    expect((await s.blocks.blockedAmong(c, [a, b])).size).toBe(0);
    // Self, duplicates and nothing at all are simply not blocked.
    expect([...(await s.blocks.blockedAmong(a, [a, b, b]))]).toEqual([b]);
    expect((await s.blocks.blockedAmong(a, [])).size).toBe(0);
    expect(await s.blocks.blocked(a, 10)).toEqual([{ uid: b, sinceMs: SENT_AT }]);
    expect(await s.blocks.blocked(b, 10)).toEqual([]);
    expect(await s.blocks.blockCount(a)).toBe(1);
    expect(await s.blocks.blockCount(b)).toBe(0);
  });

  it("is idempotent: blocking again keeps the first time, unblocking twice answers false", async () => {
    const [a, b] = [id(), id()];
    expect(await s.blocks.block(a, b, SENT_AT)).toBe(true);
    expect(await s.blocks.block(a, b, SENT_AT + 5)).toBe(false);
    expect(await s.blocks.blocked(a, 10)).toEqual([{ uid: b, sinceMs: SENT_AT }]);
    expect(await s.blocks.blockCount(a)).toBe(1);
    expect(await s.blocks.unblock(a, b)).toBe(true);
    expect(await s.blocks.unblock(a, b)).toBe(false);
    expect(await s.blocks.blocked(a, 10)).toEqual([]);
    expect((await s.blocks.blockedAmong(b, [a])).size).toBe(0);
    // Unblocking someone never blocked: no row to create, nothing to clear.
    expect(await s.blocks.unblock(b, a)).toBe(false);
  });

  it("keeps each side's bit: one's unblock leaves the other's block", async () => {
    const [low, high] = [id(), id()];
    await s.blocks.block(high, low, SENT_AT);
    expect(await blockedMark(low, high)).toMatchObject({ blocked: 2 });
    await s.blocks.block(low, high, SENT_AT + 1);
    expect(await blockedMark(low, high)).toMatchObject({ blocked: 3 });
    await s.blocks.unblock(high, low);
    expect(await blockedMark(low, high)).toMatchObject({ blocked: 1 });
    expect([...(await s.blocks.blockedAmong(high, [low]))]).toEqual([low]);
    await s.blocks.unblock(low, high);
    expect(await blockedMark(low, high)).toMatchObject({ blocked: 0 });
    expect((await s.blocks.blockedAmong(high, [low])).size).toBe(0);
  });

  it("lists the most recent block first, up to limit", async () => {
    const a = id();
    const others = [id(), id(), id()];
    for (const [i, other] of others.entries()) await s.blocks.block(a, other, SENT_AT + i * 10);
    const listed = await s.blocks.blocked(a, 10);
    expect(listed.map((r) => r.uid)).toEqual([...others].reverse());
    expect((await s.blocks.blocked(a, 2)).map((r) => r.uid)).toEqual([others[2], others[1]]);
    expect(await s.blocks.blockCount(a)).toBe(3);
    expect([...(await s.blocks.blockedAmong(a, [...others, id()]))].sort()).toEqual([...others].sort());
  });

  it("refuses self-blocks and ids that are not decimal", async () => {
    const a = id();
    expect(await codeOf(s.blocks.block(a, a, SENT_AT))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.blocks.block("x1" as Uid, a, SENT_AT))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.blocks.unblock(a, a))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await s.blocks.blocked("x1" as Uid, 10)).toEqual([]);
    expect(await s.blocks.blockCount("x1" as Uid)).toBe(0);
    expect((await s.blocks.blockedAmong("x1" as Uid, [a])).size).toBe(0);
  });

  it("refuses a blocked pair's 1:1 messages both ways without using a seq, and unblock restores them", async () => {
    const [a, b] = [id(), id()];
    const first = await s.messages.append(text(a, b, "before"));
    expect(first.message.seq).toBe(1);
    await s.blocks.block(b, a, SENT_AT);
    expect(await codeOf(s.messages.append(text(a, b, "refused")))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(s.messages.append(text(b, a, "refused too")))).toBe(ErrorCode.BLOCKED);
    // History stays, nothing was stored, no seq was used.
    const convId = convIdForPair(a, b);
    const history = await s.messages.history(a, convId, { afterSeq: 0, beforeSeq: 0, limit: 10 });
    expect(history.map((m) => m.text)).toEqual(["before"]);
    expect(await blockedMark(a, b)).toMatchObject({ lastSeq: 1 });
    await s.blocks.unblock(b, a);
    expect((await s.messages.append(text(a, b, "after"))).message.seq).toBe(2);
  });

  it("answers a resend of a message stored before the block as the duplicate it is", async () => {
    const [a, b] = [id(), id()];
    const sent = text(a, b, "stored", "resent-key");
    const first = await s.messages.append(sent);
    await s.blocks.block(b, a, SENT_AT);
    const again = await s.messages.append({ ...sent, msgId: id() });
    expect(again).toMatchObject({ duplicate: true, message: { seq: first.message.seq, msgId: first.message.msgId } });
    expect(await codeOf(s.messages.append(text(a, b, "new")))).toBe(ErrorCode.BLOCKED);
  });

  it("refuses a pair that never talked, then starts it at seq 1 once unblocked", async () => {
    const [a, b] = [id(), id()];
    await s.blocks.block(a, b, SENT_AT);
    expect(await codeOf(s.messages.append(text(b, a)))).toBe(ErrorCode.BLOCKED);
    expect(await blockedMark(a, b)).toEqual({ blocked: 1, lastSeq: 0 });
    await s.blocks.unblock(a, b);
    expect((await s.messages.append(text(b, a))).message.seq).toBe(1);
  });

  it("refuses a blocked message inside a batch of others, which succeed with gapless seqs", async () => {
    // Conversations whose appends meet in one batch (on the sharded store: on one shard).
    const blockedPair = [id(), id()] as const;
    const blockedConv = convIdForPair(...blockedPair);
    const pairs: (readonly [Uid, Uid])[] = [];
    while (pairs.length < 4) {
      const pair = [id(), id()] as const;
      if (sameBatcher(convIdForPair(...pair), blockedConv)) pairs.push(pair);
    }
    const [warm, ...others] = pairs as [readonly [Uid, Uid], ...(readonly [Uid, Uid])[]];
    // Each conversation has its first message (and, sharded, its index rows) before the burst.
    for (const [x, y] of [blockedPair, ...pairs]) await s.messages.append(text(x, y, "first"));
    await s.blocks.block(blockedPair[1], blockedPair[0], SENT_AT);
    const before = s.batches.length;
    // The warm-up holds the batcher (one batch in flight); the burst queues behind it and goes
    // as one batch: two messages to each other conversation and the blocked one between them.
    const warming = s.messages.append(text(warm[0], warm[1], "warm"));
    const burst = others.flatMap(([x, y], i) => [
      s.messages.append(text(x, y, `one ${i}`)),
      ...(i === 1 ? [s.messages.append(text(...blockedPair, "blocked"))] : []),
      s.messages.append(text(y, x, `two ${i}`)),
    ]);
    const outcomes = await Promise.allSettled([warming, ...burst]);
    if (s.batches.length > 0) expect(s.batches.slice(before)).toEqual([1, 7]);
    const codes = outcomes.map((o) =>
      o.status === "fulfilled" ? "ok" : o.reason instanceof AppError ? o.reason.code : String(o.reason),
    );
    expect(codes).toEqual(["ok", "ok", "ok", "ok", ErrorCode.BLOCKED, "ok", "ok", "ok"]);
    const seqs = outcomes.flatMap((o) =>
      o.status === "fulfilled" ? [(o.value as { message: StoredMessage }).message] : [],
    );
    expect(seqs.map((m) => [m.text, m.seq])).toEqual([
      ["warm", 2],
      ["one 0", 2],
      ["two 0", 3],
      ["one 1", 2],
      ["two 1", 3],
      ["one 2", 2],
      ["two 2", 3],
    ]);
    // The blocked conversation used no seq; the others' next messages follow without a gap.
    expect(await blockedMark(...blockedPair)).toMatchObject({ lastSeq: 1 });
    for (const [x, y] of others) expect((await s.messages.append(text(x, y, "next"))).message.seq).toBe(4);
  });

  it("refuses edits and reactions in a blocked pair's conversation, but not a recall", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    const { message } = await s.messages.append(text(a, b, "mine"));
    await s.blocks.block(b, a, SENT_AT);
    const change = (actor: Uid, effect: MessageEffect) =>
      s.messages.change({
        convId,
        targetSeq: message.seq,
        msgId: id(),
        actor,
        sentAtMs: SENT_AT + 1,
        decide: () => effect,
      });
    expect(await codeOf(change(a, { kind: "edit", text: "edited", atMs: SENT_AT + 1 }))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(change(b, { kind: "react", emoji: "👍", add: true, maxDistinct: 3 }))).toBe(ErrorCode.BLOCKED);
    const recalled = await change(a, { kind: "recall" });
    expect(recalled.target.recalled).toBe(true);
    expect(recalled.event?.seq).toBe(2);
  });

  it("completes a block that failed half-way (its row written, its mark not) on retry", async () => {
    const [a, b] = [id(), id()];
    // What a failure after the first write leaves: the row alone. Messages still flow...
    await s.exec(a, "INSERT INTO user_blocks (uid, blocked_uid, created_at) VALUES (?, ?, ?)", [a, b, SENT_AT]);
    expect((await s.messages.append(text(b, a))).message.seq).toBe(1);
    // ...until the retry, which is not a new block but sets the mark.
    expect(await s.blocks.block(a, b, SENT_AT + 1)).toBe(false);
    expect(await codeOf(s.messages.append(text(b, a)))).toBe(ErrorCode.BLOCKED);
    expect(await s.blocks.blocked(a, 10)).toEqual([{ uid: b, sinceMs: SENT_AT }]);
  });

  it.runIf(backend.name === "sharded mysql")(
    "places the block on the blocker's shard and its mark on the conversation's",
    async () => {
      const [a, b] = [id(), id()];
      await s.blocks.block(a, b, SENT_AT);
      const convId = convIdForPair(a, b);
      expect(await s.holders?.("SELECT 1 FROM user_blocks WHERE uid = ?", [a])).toEqual([s.ownerOf?.(a)]);
      expect(await s.holders?.("SELECT 1 FROM conversations WHERE conv_id = ? AND blocked <> 0", [convId])).toEqual([
        s.ownerOf?.(convId),
      ]);
    },
  );

  describe("reports", () => {
    function report(overrides: Partial<ReportRecord>): ReportRecord {
      return {
        reportId: id(),
        reporter: id(),
        uid: id(),
        convId: "",
        seq: 0,
        snapshot: "",
        reason: "spam",
        createdAt: SENT_AT,
        ...overrides,
      };
    }

    it("keeps reports and answers the newest first, before a time, up to limit, from every shard", async () => {
      const base = 1_800_000_000_000;
      const made = [
        report({ createdAt: base + 1, reason: "abuse" }),
        report({ createdAt: base + 3, convId: "p:1:2", seq: 7, snapshot: "bad words\nfile.png", reason: "spam" }),
        report({ createdAt: base + 2, reason: "🙈 unicode" }),
        report({ createdAt: base + 3 }),
        report({ createdAt: base + 5 }),
      ];
      for (const r of made) await s.reports.create(r);
      const newest = (await s.reports.recent(0, 100)).filter((r) => r.createdAt > base);
      // The same millisecond: the larger id first.
      expect(newest.map((r) => r.reportId)).toEqual([
        made[4]?.reportId,
        made[3]?.reportId,
        made[1]?.reportId,
        made[2]?.reportId,
        made[0]?.reportId,
      ]);
      expect(newest[2]).toEqual(made[1]);
      expect((await s.reports.recent(base + 3, 2)).map((r) => r.reportId)).toEqual([
        made[2]?.reportId,
        made[0]?.reportId,
      ]);
      expect((await s.reports.recent(0, 1)).map((r) => r.reportId)).toEqual([made[4]?.reportId]);
      expect(await s.reports.recent(0, 0)).toEqual([]);
      if (s.holders) {
        const shardsHolding = new Set<string>();
        for (const r of made) {
          const at = await s.holders("SELECT 1 FROM reports WHERE report_id = ?", [r.reportId]);
          expect(at).toEqual([s.ownerOf?.(`report:${r.reportId}`)]);
          shardsHolding.add(at[0] as string);
        }
        expect(shardsHolding.size).toBeGreaterThan(1);
      }
    });

    it("refuses what the columns cannot hold", async () => {
      expect(await codeOf(s.reports.create(report({ reporter: "x" as Uid })))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(await codeOf(s.reports.create(report({ convId: "c".repeat(65) })))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(await codeOf(s.reports.create(report({ seq: -1 })))).toBe(ErrorCode.INVALID_ARGUMENT);
    });
  });
});

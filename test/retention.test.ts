import { ChatClient } from "@shardchat/sdk";
import { describe, expect, it } from "vitest";
import {
  type ChatMessage,
  GroupEventKind,
  type GroupEventPush,
  GroupRole,
  MessageKind,
} from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { MemoryJobLocks } from "../src/routing/memory/job-locks.js";
import type { RetentionStore, StoredMessage, Uid } from "../src/storage/ports.js";
import { RetentionPurger, type RetentionSettings } from "../src/storage/retention/purger.js";
import { slotOf } from "../src/storage/sharded/shard-map.js";
import { openSqlite, sqliteFileIn } from "../src/storage/sqlite/database.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { SqliteRetentionStore } from "../src/storage/sqlite/retention-store.js";
import { contractBackends, type OpenedBackend, openedForSuite } from "./helpers/backends.js";
import { startMemoryNode } from "./helpers/memory-node.js";
import { textMessage } from "./helpers/messages.js";

/** Retention (issue 17) through the store API and the purge job, the same contract on every backend. */
const backends = contractBackends({ tag: "sc-retention-", groupCommit: { batchMax: 8, batchConcurrency: 2 } });

const NOW = Date.now();
const HOUR = 3_600;
const OLD = NOW - 2 * HOUR * 1000;
const FRESH = NOW - 10_000;
const everything = { afterSeq: 0, beforeSeq: 0, limit: 100 };
const log = createLogger("retention-test", process.env.LOG_LEVEL ?? "warn");

describe.each(backends)("retention on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_310_000_000_000_000_000n;
  const id = () => uidOf(next++);

  /** Fences key's slot on its instance as a rebalance does (sharded only); answers the unfence. */
  async function fence(key: string): Promise<() => Promise<void>> {
    const shards = s.shards as NonNullable<OpenedBackend["shards"]>;
    const fenced = [slotOf(key, shards.map.slots)];
    await s.exec(
      key,
      "INSERT INTO slot_fence (slot, state, job_id, created_at) VALUES (?, 'moving', 'test', 0)",
      fenced,
    );
    return async () => {
      await s.exec(key, "DELETE FROM slot_fence WHERE job_id = 'test'", []);
    };
  }

  function pair(): { a: Uid; b: Uid; convId: string } {
    const [a, b] = [id(), id()];
    return { a, b, convId: convIdForPair(a, b) };
  }

  async function send(sender: Uid, recipient: Uid, sentAtMs: number, text = "hi"): Promise<StoredMessage> {
    const { message } = await s.messages.append(
      textMessage(sender, recipient, text, { msgId: id(), clientMsgId: `c-${id()}`, sentAtMs }),
    );
    return message;
  }

  async function sendToGroup(groupId: string, sender: Uid, sentAtMs: number, text = "hi"): Promise<StoredMessage> {
    const { message } = await s.groups.append({
      groupId,
      msgId: id(),
      sender,
      clientMsgId: `g-${id()}`,
      kind: MessageKind.TEXT,
      text,
      sentAtMs,
    });
    return message;
  }

  function purger(settings: Partial<RetentionSettings> = {}) {
    return new RetentionPurger({
      store: s.retention,
      files: s.files,
      settings: {
        MESSAGE_TTL_SECONDS: HOUR,
        RETENTION_PURGE_INTERVAL_MS: 60_000,
        RETENTION_PURGE_BATCH: 2,
        RETENTION_PURGE_CONVERSATIONS_PAGE: 3,
        ...settings,
      },
      log,
      metrics: createMetrics("retention-test"),
      now: () => NOW,
    });
  }

  /** Every expired conversation the store answers, over all instances and pages (page size 2). */
  async function expired(defaultTtl: number): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    for (const instance of s.retention.instances()) {
      for (let after: string | null = ""; after !== null; ) {
        const page: Awaited<ReturnType<RetentionStore["expiredConversations"]>> =
          await s.retention.expiredConversations(instance, after, 2, NOW, defaultTtl);
        for (const c of page.conversations) found.set(c.convId, c.cutoffMs);
        after = page.next;
      }
    }
    return found;
  }

  const retainedFrom = async (convId: string) =>
    Number(
      (await s.rows(convId, "SELECT retained_from_seq FROM conversations WHERE conv_id = ?", [convId]))[0]
        ?.retained_from_seq,
    );
  const storedSeqs = async (convId: string) =>
    (await s.rows(convId, "SELECT seq FROM messages WHERE conv_id = ? ORDER BY seq", [convId])).map((r) =>
      Number(r.seq),
    );

  it("purges a conversation's expired messages in batches with their reactions and delete-for-me marks", async () => {
    const { a, b, convId } = pair();
    for (let i = 0; i < 5; i++) await send(a, b, OLD + i);
    // A reaction on seq 2 (its event takes seq 6, old too) and a delete-for-me mark on seq 3.
    await s.messages.change({
      convId,
      targetSeq: 2,
      msgId: id(),
      actor: b,
      sentAtMs: OLD + 10,
      decide: () => ({ kind: "react", emoji: "👍", add: true, maxDistinct: 5 }),
    });
    await s.messages.hide(a, convId, [3]);
    await send(b, a, FRESH);
    await send(a, b, FRESH + 1);
    expect(await storedSeqs(convId)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await expired(HOUR)).get(convId)).toBe(NOW - HOUR * 1000);
    // Kept forever by default, and no group TTL here: nothing to purge.
    expect((await expired(0)).has(convId)).toBe(false);

    // Batches of 2: [1, 2], [3, 4], [5, 6], then 7 is not expired.
    const cutoff = NOW - HOUR * 1000;
    expect((await s.retention.purge(convId, cutoff, 2)).messages).toBe(2);
    expect(await retainedFrom(convId)).toBe(3);
    expect((await s.retention.purge(convId, cutoff, 2)).messages).toBe(2);
    expect((await s.retention.purge(convId, cutoff, 2)).messages).toBe(2);
    expect((await s.retention.purge(convId, cutoff, 2)).messages).toBe(0);
    expect(await retainedFrom(convId)).toBe(7);
    expect(await storedSeqs(convId)).toEqual([7, 8]);
    expect(await s.rows(convId, "SELECT seq FROM message_reactions WHERE conv_id = ?", [convId])).toEqual([]);
    expect(await s.rows(convId, "SELECT seq FROM message_hidden WHERE conv_id = ?", [convId])).toEqual([]);
    const member = await s.rows(convId, "SELECT hidden_count FROM conversation_members WHERE conv_id = ? AND uid = ?", [
      convId,
      a,
    ]);
    expect(Number(member[0]?.hidden_count)).toBe(0);
    expect((await expired(HOUR)).has(convId)).toBe(false);

    // History starts at the first retained seq; older seqs are not gaps.
    const page = await s.messages.historyPage(b, convId, everything);
    expect(page.firstSeq).toBe(7);
    expect(page.messages.map((m) => m.seq)).toEqual([7, 8]);
    expect((await s.messages.history(a, convId, { afterSeq: 2, beforeSeq: 0, limit: 3 })).map((m) => m.seq)).toEqual([
      7, 8,
    ]);
    expect(await s.messages.message(a, convId, 2)).toBeNull();
    // A delete-for-me of a purged seq marks nothing.
    await s.messages.hide(a, convId, [1, 2]);
    expect(await s.rows(convId, "SELECT seq FROM message_hidden WHERE conv_id = ?", [convId])).toEqual([]);
    // Cleared past the purge, the cleared seq rules; cleared before it, the purge does.
    // The conversation list says the same: its history starts after the purged seqs.
    const listed = (await s.conversations.list(b, 10)).find((c) => c.convId === convId);
    expect(listed?.clearedSeq).toBe(6);
    await s.conversations.clearHistory(a, convId, 7);
    expect((await s.messages.historyPage(a, convId, everything)).firstSeq).toBe(8);
    expect((await s.messages.historyPage(b, convId, everything)).firstSeq).toBe(7);
  });

  it("the purge job empties every expired conversation, a page and a batch at a time", async () => {
    const convs = Array.from({ length: 4 }, () => pair());
    for (const { a, b } of convs) {
      for (let i = 0; i < 5; i++) await send(a, b, OLD + i);
      await send(b, a, FRESH);
    }
    const reports = await purger().runOnce();
    expect(reports.map((r) => r.instance).sort()).toEqual(s.retention.instances().sort());
    expect(reports.every((r) => r.ran && r.skipped === 0)).toBe(true);
    expect(reports.reduce((n, r) => n + r.rows, 0)).toBeGreaterThanOrEqual(20);
    for (const { convId } of convs) {
      expect(await storedSeqs(convId)).toEqual([6]);
      expect(await retainedFrom(convId)).toBe(6);
    }
    // A second pass finds nothing left.
    const again = await purger().runOnce();
    expect(again.reduce((n, r) => n + r.rows, 0)).toBe(0);
  });

  it("the purge releases the files of the messages it deletes, but not a forwarded one nor one a kept message names", async () => {
    const { a, b, convId } = pair();
    const upload = async () => {
      const file = { id: id(), owner: a, convId, name: "f.txt", size: 3, contentType: "text/plain", createdAt: OLD };
      await s.files.create(file);
      expect(await s.files.markSent(file.id, OLD)).toBe(true);
      return file;
    };
    const sendFile = async (file: { id: string }, sentAtMs: number) => {
      const ref = { id: file.id, name: "f.txt", size: "3", contentType: "text/plain" };
      await s.messages.append({
        ...textMessage(a, b, "", { msgId: id(), clientMsgId: `f-${id()}`, sentAtMs }),
        kind: MessageKind.FILE,
        file: ref,
      });
    };
    const [expiring, forwarded, keptBy] = [await upload(), await upload(), await upload()];
    await sendFile(expiring, OLD);
    await sendFile(forwarded, OLD + 1);
    expect(await s.files.share(forwarded.id, convIdForPair(b, id()))).toBe(true);
    // Named by an expired message and by a fresh one.
    await sendFile(keptBy, OLD + 2);
    expect(await s.files.markSent(keptBy.id, FRESH)).toBe(true);
    await sendFile(keptBy, FRESH);
    // The store answers the purged messages' files; the purger releases them.
    await purger().runOnce();
    expect(await storedSeqs(convId)).toEqual([4]);
    expect(await s.files.byId(expiring.id)).toBeNull();
    expect(await s.files.byId(forwarded.id)).not.toBeNull();
    expect(await s.files.byId(keptBy.id)).not.toBeNull();
    expect(await s.files.sweepReleased(100)).toEqual([expiring.id]);
  });

  it("a group's TTL overrides the deployment's, shorter or longer; 0 goes back to it", async () => {
    const [owner, member] = [id(), id()];
    const short = id();
    const long = id();
    await s.groups.create({ groupId: short, name: "short", owner, members: [member], maxMembers: 10 });
    await s.groups.create({ groupId: long, name: "long", owner, members: [member], maxMembers: 10 });
    expect((await s.groups.setRetention(short, 60))?.messageTtlSeconds).toBe(60);
    expect((await s.groups.setRetention(long, 100 * HOUR))?.messageTtlSeconds).toBe(100 * HOUR);
    expect((await s.groups.get(short))?.messageTtlSeconds).toBe(60);
    expect(await s.groups.setRetention(id(), 60)).toBeNull();
    // Two minutes old: past the group's minute, well within the deployment's hour.
    await sendToGroup(short, owner, NOW - 120_000);
    await sendToGroup(short, member, FRESH);
    // Two hours old: past the deployment's hour, within the group's hundred.
    await sendToGroup(long, owner, OLD);
    const { a, b, convId } = pair();
    await send(a, b, NOW - 120_000);

    const withDefault = await expired(HOUR);
    expect(withDefault.get(groupConvId(short))).toBe(NOW - 60_000);
    expect(withDefault.has(groupConvId(long))).toBe(false);
    expect(withDefault.has(convId)).toBe(false);
    // Kept forever by default: only the groups with a TTL of their own are looked at.
    const forever = await expired(0);
    expect(forever.get(groupConvId(short))).toBe(NOW - 60_000);
    expect(forever.has(convId)).toBe(false);

    await purger({ MESSAGE_TTL_SECONDS: 0 }).runOnce();
    expect(await storedSeqs(groupConvId(short))).toEqual([2]);
    expect(await storedSeqs(groupConvId(long))).toEqual([1]);
    expect(await storedSeqs(convId)).toEqual([1]);
    expect((await s.messages.historyPage(member, groupConvId(short), everything)).firstSeq).toBe(2);

    // Back to the deployment's TTL: the group's two-hour-old message goes with an hour.
    const reset = await s.groups.setRetention(long, 0);
    expect(reset?.messageTtlSeconds).toBeUndefined();
    await purger().runOnce();
    expect(await storedSeqs(groupConvId(long))).toEqual([]);
    expect(await retainedFrom(groupConvId(long))).toBe(2);
    const empty = await s.messages.historyPage(member, groupConvId(long), everything);
    expect(empty).toEqual({ messages: [], firstSeq: 2 });
    // The group goes on: its next message takes seq 2.
    expect((await sendToGroup(long, member, NOW)).seq).toBe(2);
  });

  it("a live conversation keeps chatting while it is purged", async () => {
    const { a, b, convId } = pair();
    for (let i = 0; i < 40; i++) await send(a, b, OLD + i);
    const sends = Array.from({ length: 20 }, (_, i) => send(i % 2 ? a : b, i % 2 ? b : a, NOW + i, `live ${i}`));
    const [reports, stored] = await Promise.all([purger().runOnce(), Promise.all(sends)]);
    expect(reports.every((r) => r.skipped === 0)).toBe(true);
    expect(stored.map((m) => m.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => 41 + i));
    expect(await retainedFrom(convId)).toBe(41);
    const page = await s.messages.historyPage(a, convId, everything);
    expect(page.firstSeq).toBe(41);
    expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 41 + i));
    expect((await send(a, b, NOW + 100)).seq).toBe(61);
  });

  it("pending after a purge starts at the first retained seq and does not stall", async () => {
    const { a, b, convId } = pair();
    for (let i = 0; i < 6; i++) await send(a, b, OLD + i);
    await send(a, b, FRESH);
    await send(a, b, FRESH + 1);
    // b never acked anything: its cursor is 0, below the purge.
    await s.retention.purge(convId, NOW - HOUR * 1000, 100);
    expect(await retainedFrom(convId)).toBe(7);
    const first = await s.messages.pending(b, 1);
    expect(first.messages.map((m) => [m.convId, m.seq])).toEqual([[convId, 7]]);
    expect(first.more).toBe(true);
    const all = await s.messages.pending(b, 100);
    expect(all.messages.map((m) => m.seq)).toEqual([7, 8]);
    expect(all.more).toBe(false);
    await s.messages.ack(b, [{ convId, seq: 8 }]);
    expect(await s.messages.pending(b, 100)).toEqual({ messages: [], more: false });
    // A conversation purged to its end waits for nothing either.
    const other = pair();
    for (let i = 0; i < 3; i++) await send(other.a, other.b, OLD + i);
    await s.retention.purge(other.convId, NOW - HOUR * 1000, 100);
    expect(await s.messages.pending(other.b, 100)).toEqual({ messages: [], more: false });
    expect((await send(other.a, other.b, NOW)).seq).toBe(4);
    expect((await s.messages.pending(other.b, 100)).messages.map((m) => m.seq)).toEqual([4]);
  });

  it.runIf(backend.name === "sharded mysql")(
    "skips a conversation whose slot is fenced (a rebalance moving it), and purges it on the next pass",
    async () => {
      const { a, b, convId } = pair();
      for (let i = 0; i < 3; i++) await send(a, b, OLD + i);
      const unfence = await fence(convId);
      try {
        const reports = await purger().runOnce();
        expect(reports.reduce((n, r) => n + r.skipped, 0)).toBeGreaterThanOrEqual(1);
        expect(await storedSeqs(convId)).toEqual([1, 2, 3]);
        expect(await s.retention.purge(convId, NOW, 10).catch((err: { code?: unknown }) => err.code)).toBe(
          ErrorCode.SLOT_MOVING,
        );
      } finally {
        await unfence();
      }
      await purger().runOnce();
      expect(await storedSeqs(convId)).toEqual([]);
      expect(await retainedFrom(convId)).toBe(4);
    },
  );

  it("a purger without its instance's lease leaves the pass to the holder", async () => {
    const locks = new MemoryJobLocks();
    const make = () =>
      new RetentionPurger({
        store: s.retention,
        settings: {
          MESSAGE_TTL_SECONDS: HOUR,
          RETENTION_PURGE_INTERVAL_MS: 60_000,
          RETENTION_PURGE_BATCH: 100,
          RETENTION_PURGE_CONVERSATIONS_PAGE: 100,
        },
        log,
        locks,
        now: () => NOW,
      });
    const first = await make().runOnce();
    const second = await make().runOnce();
    expect(first.every((r) => r.ran)).toBe(true);
    expect(second.every((r) => !r.ran)).toBe(true);
  });

  it("erases the messages a user sent (account deletion), a page at a time, idempotently", async () => {
    const { a, b, convId } = pair();
    const mine = [];
    for (let i = 0; i < 5; i++) mine.push(await send(a, b, NOW + i, `secret ${i}`));
    const theirs = await send(b, a, NOW + 10, "kept");
    await s.messages.change({
      convId,
      targetSeq: mine[1]?.seq as number,
      msgId: id(),
      actor: b,
      sentAtMs: NOW + 11,
      decide: () => ({ kind: "react", emoji: "🙂", add: true, maxDistinct: 5 }),
    });
    expect(await s.eraser.conversationsOf(a)).toContain(convId);
    let erased = 0;
    let pages = 0;
    for (let after: string | null = ""; after !== null; pages++) {
      const page: { erased: number; next: string | null } = await s.eraser.eraseSent(a, convId, after, 2);
      erased += page.erased;
      after = page.next;
    }
    expect(erased).toBe(5);
    expect(pages).toBeGreaterThanOrEqual(3);
    const page = await s.messages.history(b, convId, everything);
    for (const m of mine) {
      const read = page.find((x) => x.seq === m.seq);
      expect(read).toMatchObject({ recalled: true, text: "" });
      expect(read?.reactions).toBeUndefined();
    }
    expect(page.find((x) => x.seq === theirs.seq)?.text).toBe("kept");
    expect(await s.rows(convId, "SELECT seq FROM message_reactions WHERE conv_id = ?", [convId])).toEqual([]);
    // Again: nothing more.
    expect((await s.eraser.eraseSent(a, convId, "", 100)).erased).toBe(0);
  });
});

describe("the SDK over a purged range", () => {
  it("fills a gap from the first retained seq and never loops on purged seqs", async () => {
    const node = await startMemoryNode();
    const db = openSqlite(sqliteFileIn(node.config.DATA_DIR));
    const clients: ChatClient[] = [];
    try {
      const store = new SqliteMessageStore(db);
      const retention = new SqliteRetentionStore(db);
      const alice = await node.user("alice");
      const bob = await node.user("bob");
      const convId = convIdForPair(alice.uid, bob.uid);
      let n = 0;
      const old = (text: string) =>
        store.append(
          textMessage(alice.uid, bob.uid, text, {
            msgId: uidOf(7_320_000_000_000_000_000n + BigInt(n++)),
            clientMsgId: `o-${n}`,
            sentAtMs: OLD,
          }),
        );
      for (let i = 1; i <= 10; i++) await old(`old ${i}`);
      // Purged up to 8: seqs 9 and 10 are left (their sent time made recent).
      db.prepare("UPDATE messages SET sent_at = ? WHERE conv_id = ? AND seq >= 9").run(NOW, convId);
      expect((await retention.purge(convId, NOW - 1000, 100)).messages).toBe(8);

      // Bob had seen up to seq 2 on an earlier connection; a push of 11 makes a gap from 2.
      const received: ChatMessage[] = [];
      const bob2 = await ChatClient.connect(
        { transport: "tcp", host: "127.0.0.1", port: node.node.info.tcpPort },
        { heartbeat: false, ackDelayMs: 0, seen: new Map([[convId, 2]]) },
      );
      clients.push(bob2);
      bob2.on("message", (m) => received.push(m));
      await bob2.login(bob.uid, bob.token);
      await alice.client.sendText(bob.uid, "live 11");
      await expect.poll(() => received.map((m) => m.seq)).toEqual([9, 10, 11]);

      // Everything before the next push purged: the gap fill finds nothing in range and stops.
      db.prepare("UPDATE messages SET sent_at = ? WHERE conv_id = ?").run(OLD, convId);
      expect((await retention.purge(convId, NOW - 1000, 100)).messages).toBe(3);
      const bob3 = await ChatClient.connect(
        { transport: "tcp", host: "127.0.0.1", port: node.node.info.tcpPort },
        { heartbeat: false, ackDelayMs: 0, seen: new Map([[convId, 5]]) },
      );
      clients.push(bob3);
      const later: ChatMessage[] = [];
      bob3.on("message", (m) => later.push(m));
      await bob3.login(bob.uid, bob.token);
      await alice.client.sendText(bob.uid, "live 12");
      await expect.poll(() => later.at(-1)?.seq).toBe(12);
      // (11 may come first: pushed again if bob2's ack of it had not landed; never a purged seq.)
      expect(later.every((m) => m.seq >= 11)).toBe(true);
      const page = await bob3.historyPage({ convId });
      expect(page.firstSeq).toBe(12);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      db.close();
      await node.close();
    }
  });
});

describe("group_set_retention_req", () => {
  it("lets admins and the owner set a group's TTL, tells the members, and refuses everyone else", async () => {
    const node = await startMemoryNode({ GROUP_JOIN_CONSENT: "none" });
    try {
      const owner = await node.user("owner");
      const admin = await node.user("admin");
      const member = await node.user("member");
      const outsider = await node.user("outsider");
      const group = await owner.client.createGroup("ttl", [admin.uid, member.uid]);
      await owner.client.setGroupRole(group.groupId, admin.uid, GroupRole.ADMIN);

      // Earlier events (the role change) may still be on their way: wait for this one.
      const events: GroupEventPush[] = [];
      member.client.on("groupEvent", (e) => events.push(e));
      await admin.client.setGroupRetention(group.groupId, 3600);
      await expect.poll(() => events.some((e) => e.kind === GroupEventKind.RETENTION)).toBe(true);
      const event = events.find((e) => e.kind === GroupEventKind.RETENTION) as GroupEventPush;
      expect(event.actor).toBe(admin.uid);
      expect(event.group?.messageTtlSeconds).toBe(3600);
      expect((await member.client.listGroups()).find((g) => g.groupId === group.groupId)?.messageTtlSeconds).toBe(3600);
      await owner.client.setGroupRetention(group.groupId, 0);
      expect(
        (await member.client.listGroups()).find((g) => g.groupId === group.groupId)?.messageTtlSeconds,
      ).toBeUndefined();

      const codeOf = (p: Promise<unknown>) =>
        p.then(
          () => "resolved",
          (err: { code?: unknown }) => err.code,
        );
      expect(await codeOf(member.client.setGroupRetention(group.groupId, 60))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
      expect(await codeOf(outsider.client.setGroupRetention(group.groupId, 60))).toBe(ErrorCode.NOT_GROUP_MEMBER);
      expect(await codeOf(owner.client.setGroupRetention("0", 60))).toBe(ErrorCode.INVALID_ARGUMENT);
      await owner.client.dissolveGroup(group.groupId);
      expect(await codeOf(owner.client.setGroupRetention(group.groupId, 60))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    } finally {
      await node.close();
    }
  });
});

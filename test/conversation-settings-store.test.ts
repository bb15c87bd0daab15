import { describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, uidOf } from "../src/ids/identifiers.js";
import type { ConversationSummaryRecord, MessageExtras, StoredMessage, Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";
import { textMessage } from "./helpers/messages.js";
import { codeOf } from "./helpers/waits.js";

/** Per-user conversation settings and clear history (issue 17), the same contract on every backend. */
const backends = contractBackends({ tag: "sc-settings-", groupCommit: { batchMax: 8, batchConcurrency: 2 } });

const SENT_AT = 1_700_000_000_000;
const everything = { afterSeq: 0, beforeSeq: 0, limit: 100 };
const plain = { pinned: false, muted: false, hidden: false };

describe.each(backends)("conversation settings on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_400_000_000_000_000_000n;
  const id = () => uidOf(next++);

  async function send(sender: Uid, recipient: Uid, text: string, extras?: MessageExtras): Promise<StoredMessage> {
    const ids = { msgId: id(), clientMsgId: `c-${id()}`, sentAtMs: SENT_AT };
    return (await s.messages.append({ ...textMessage(sender, recipient, text, ids), extras })).message;
  }

  const list = (uid: Uid) => s.conversations.list(uid, 50);
  const entry = async (uid: Uid, convId: string): Promise<ConversationSummaryRecord | undefined> =>
    (await list(uid)).find((c) => c.convId === convId);
  const seqs = (page: StoredMessage[]) => page.map((m) => m.seq);

  it("stores each setting for the user alone; fields left out stay; the list carries them", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "hello");
    expect((await entry(a, convId))?.settings).toEqual(plain);
    expect((await entry(a, convId))?.clearedSeq).toBe(0);

    expect(await s.conversations.setSettings(a, convId, { pinned: true })).toEqual({ ...plain, pinned: true });
    expect(await s.conversations.setSettings(a, convId, { muted: true })).toEqual({
      pinned: true,
      muted: true,
      hidden: false,
    });
    // An empty patch changes nothing and answers the settings.
    expect(await s.conversations.setSettings(a, convId, {})).toEqual({ pinned: true, muted: true, hidden: false });
    expect((await entry(a, convId))?.settings).toEqual({ pinned: true, muted: true, hidden: false });
    // The peer's settings of the same conversation are its own.
    expect((await entry(b, convId))?.settings).toEqual(plain);
    expect(await s.conversations.setSettings(a, convId, { pinned: false, muted: false })).toEqual(plain);
    expect((await entry(a, convId))?.settings).toEqual(plain);
    // The settings live on the user's member row beside the conversation.
    const [row] = await s.rows(
      convId,
      "SELECT pinned, muted, hidden_at_seq, cleared_seq FROM conversation_members WHERE conv_id = ? AND uid = ?",
      [convId, a],
    );
    expect(row).toMatchObject({ pinned: 0, muted: 0, hidden_at_seq: null, cleared_seq: 0 });
  });

  it("hides a conversation until the next message after it, from either side", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "one");
    await send(b, a, "two");
    expect(await s.conversations.setSettings(a, convId, { hidden: true })).toEqual({ ...plain, hidden: true });
    expect(await entry(a, convId)).toBeUndefined();
    expect(await entry(b, convId)).toBeDefined();
    const [row] = await s.rows(convId, "SELECT hidden_at_seq FROM conversation_members WHERE conv_id = ? AND uid = ?", [
      convId,
      a,
    ]);
    expect(Number(row?.hidden_at_seq)).toBe(2);
    // Hidden from the list only: history and unread go on.
    expect(seqs(await s.messages.history(a, convId, everything))).toEqual([1, 2]);

    // A message after it shows it again, and the settings say it is no longer hidden.
    await send(b, a, "three");
    expect(await entry(a, convId)).toMatchObject({ lastSeq: 3, settings: { ...plain, hidden: false } });
    // Hidden again: until the next one; its own message shows it too.
    await s.conversations.setSettings(a, convId, { hidden: true });
    expect(await entry(a, convId)).toBeUndefined();
    await send(a, b, "four");
    expect((await entry(a, convId))?.lastSeq).toBe(4);
    // Unhiding shows it at once.
    await s.conversations.setSettings(a, convId, { hidden: true });
    expect(await entry(a, convId)).toBeUndefined();
    expect(await s.conversations.setSettings(a, convId, { hidden: false })).toEqual(plain);
    expect((await entry(a, convId))?.settings).toEqual(plain);
  });

  it("lists pinned conversations first, then the most recently active", async () => {
    const me = id();
    const peers = [id(), id(), id(), id()];
    for (const peer of peers) await send(peer, me, `from ${peer}`);
    const convs = peers.map((p) => convIdForPair(me, p));
    // Newest first without pins.
    expect((await list(me)).map((c) => c.convId)).toEqual([...convs].reverse());
    await s.conversations.setSettings(me, convs[0] as string, { pinned: true });
    await s.conversations.setSettings(me, convs[2] as string, { pinned: true });
    expect((await list(me)).map((c) => c.convId)).toEqual([convs[2], convs[0], convs[3], convs[1]]);
    // A limit keeps the pinned ones.
    expect((await s.conversations.list(me, 2)).map((c) => c.convId)).toEqual([convs[2], convs[0]]);
    // Activity reorders within each part.
    await send(peers[0] as Uid, me, "again");
    await send(peers[1] as Uid, me, "again");
    expect((await list(me)).map((c) => c.convId)).toEqual([convs[0], convs[2], convs[1], convs[3]]);
  });

  it("clears history for the user alone: history, historyPage, message, pending, list and unread", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    for (let i = 1; i <= 5; i++) await send(b, a, `m${i}`);
    // a has acked nothing yet: all five are pending for it.
    expect((await s.messages.pending(a, 100)).messages.filter((m) => m.convId === convId).length).toBe(5);

    expect(await s.conversations.clearHistory(a, convId, 3)).toBe(3);
    expect(seqs(await s.messages.history(a, convId, everything))).toEqual([4, 5]);
    expect(await s.messages.historyPage(a, convId, everything)).toMatchObject({ firstSeq: 4 });
    expect(seqs((await s.messages.historyPage(a, convId, everything)).messages)).toEqual([4, 5]);
    // Every way of paging stops at the cleared seq.
    expect(seqs(await s.messages.history(a, convId, { afterSeq: 1, beforeSeq: 0, limit: 10 }))).toEqual([4, 5]);
    expect(seqs(await s.messages.history(a, convId, { afterSeq: 0, beforeSeq: 5, limit: 10 }))).toEqual([4]);
    expect(await s.messages.history(a, convId, { afterSeq: 0, beforeSeq: 4, limit: 10 })).toEqual([]);
    expect(await s.messages.message(a, convId, 3)).toBeNull();
    expect(await s.messages.message(a, convId, 1)).toBeNull();
    expect((await s.messages.message(a, convId, 4))?.text).toBe("m4");
    // Sync skips what was cleared (the delivered cursor moved up to it).
    expect(seqs((await s.messages.pending(a, 100)).messages.filter((m) => m.convId === convId))).toEqual([4, 5]);
    // The list: unread counts after it; the last message is still shown.
    expect(await entry(a, convId)).toMatchObject({ lastSeq: 5, readSeq: 3, clearedSeq: 3 });
    expect((await entry(a, convId))?.lastMessage?.seq).toBe(5);

    // The peer keeps everything.
    expect(seqs(await s.messages.history(b, convId, everything))).toEqual([1, 2, 3, 4, 5]);
    expect(await s.messages.historyPage(b, convId, everything)).toMatchObject({ firstSeq: 1 });
    expect((await s.messages.message(b, convId, 1))?.text).toBe("m1");
    expect(await entry(b, convId)).toMatchObject({ clearedSeq: 0, readSeq: 5 });

    // Never backwards; 0 is the newest; never past the newest.
    expect(await s.conversations.clearHistory(a, convId, 2)).toBe(3);
    expect(await s.conversations.clearHistory(a, convId, 99)).toBe(5);
    expect(await s.conversations.clearHistory(a, convId, 1)).toBe(5);
    expect(await s.messages.history(a, convId, everything)).toEqual([]);
    expect(await s.messages.historyPage(a, convId, everything)).toEqual({ messages: [], firstSeq: 6 });
    expect((await s.messages.pending(a, 100)).messages.filter((m) => m.convId === convId)).toEqual([]);
    // Everything cleared: the list keeps the conversation, without its last message and unread.
    const cleared = await entry(a, convId);
    expect(cleared).toMatchObject({ lastSeq: 5, readSeq: 5, clearedSeq: 5 });
    expect(cleared?.lastMessage).toBeUndefined();

    // A later message reads as usual.
    const later = await send(b, a, "after the clear");
    expect(seqs(await s.messages.history(a, convId, everything))).toEqual([later.seq]);
    expect(seqs((await s.messages.pending(a, 100)).messages.filter((m) => m.convId === convId))).toEqual([later.seq]);
    expect(await s.conversations.clearHistory(a, convId, 0)).toBe(later.seq);
    expect(await s.messages.history(a, convId, everything)).toEqual([]);
  });

  it("a clear moves the read cursor: mentions at or below it are not counted", async () => {
    const [owner, x] = [id(), id()];
    const groupId = id();
    const convId = groupConvId(groupId);
    await s.groups.create({ groupId, name: "cleared", owner, members: [x], maxMembers: 10 });
    const post = async (extras?: MessageExtras) =>
      (
        await s.groups.append({
          groupId,
          msgId: id(),
          sender: owner,
          clientMsgId: `c-${id()}`,
          kind: MessageKind.TEXT,
          text: "@x",
          sentAtMs: SENT_AT,
          extras,
        })
      ).message;
    const toX = await post({ mentions: { uids: [x], all: false } });
    await post();
    expect(await entry(x, convId)).toMatchObject({ mentioned: true });
    expect(await s.conversations.clearHistory(x, convId, toX.seq)).toBe(toX.seq);
    expect(await entry(x, convId)).toMatchObject({ mentioned: false, readSeq: toX.seq, clearedSeq: toX.seq });
    // A mention after the cleared seq counts again.
    await post({ mentions: { uids: [], all: true } });
    expect((await entry(x, convId))?.mentioned).toBe(true);
  });

  it("answers NOT_PARTICIPANT to a user who is not in the conversation", async () => {
    const [a, b, stranger] = [id(), id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "hi");
    expect(await codeOf(s.conversations.setSettings(stranger, convId, { pinned: true }))).toBe(
      ErrorCode.NOT_PARTICIPANT,
    );
    expect(await codeOf(s.conversations.clearHistory(stranger, convId, 0))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(s.conversations.setSettings(a, "p:1:2", { pinned: true }))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(s.conversations.clearHistory(a, "g:404", 0))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(s.messages.historyPage(stranger, convId, everything))).toBe(ErrorCode.NOT_PARTICIPANT);
    // Nothing was written for the stranger.
    expect((await entry(a, convId))?.settings).toEqual(plain);
  });

  it("keeps the settings and the clear on the user's member row, cursors moved with the clear", async () => {
    const [a, b] = [id(), id()];
    const convId = convIdForPair(a, b);
    await send(a, b, "placed");
    await s.conversations.setSettings(a, convId, { pinned: true, hidden: true });
    await s.conversations.clearHistory(a, convId, 0);
    const [row] = await s.rows(
      convId,
      "SELECT pinned, hidden_at_seq, cleared_seq, delivered_seq, read_seq FROM conversation_members WHERE conv_id = ? AND uid = ?",
      [convId, a],
    );
    expect(row).toMatchObject({ pinned: 1, hidden_at_seq: 1, cleared_seq: 1, delivered_seq: 1, read_seq: 1 });
  });
});

import { describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, uidOf } from "../src/ids/identifiers.js";
import type { MessageEffect, MessageExtras, StoredFile, StoredMessage, Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";
import { textMessage } from "./helpers/messages.js";
import { codeOf } from "./helpers/waits.js";

/**
 * The message model (issue 16) through the store API, the same contract on every backend. Group
 * commit is on, as in production: a batch refused for a resend goes again one by one.
 */
const backends = contractBackends({ tag: "sc-model-", groupCommit: { batchMax: 8, batchConcurrency: 2 } });

const SENT_AT = 1_700_000_000_000;
const EDITED_AT = 1_700_000_100_000;
const everything = { afterSeq: 0, beforeSeq: 0, limit: 100 };

describe.each(backends)("message model on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_300_000_000_000_000_000n;
  const id = () => uidOf(next++);

  /** A fresh 1:1 conversation of two new users. */
  function pair(): { a: Uid; b: Uid; convId: string } {
    const [a, b] = [id(), id()];
    return { a, b, convId: convIdForPair(a, b) };
  }

  async function send(
    sender: Uid,
    recipient: Uid,
    text: string,
    more: { extras?: MessageExtras; kind?: number; file?: StoredFile; clientMsgId?: string } = {},
  ): Promise<StoredMessage> {
    const ids = { msgId: id(), clientMsgId: more.clientMsgId ?? `c-${id()}`, sentAtMs: SENT_AT };
    const m = { ...textMessage(sender, recipient, text, ids), kind: more.kind ?? MessageKind.TEXT };
    const { message } = await s.messages.append({ ...m, extras: more.extras, file: more.file });
    return message;
  }

  function change(actor: Uid, convId: string, targetSeq: number, decide: (t: StoredMessage) => MessageEffect | null) {
    return s.messages.change({ convId, targetSeq, msgId: id(), actor, sentAtMs: SENT_AT + 1, decide });
  }
  const recall = (actor: Uid, convId: string, seq: number) => change(actor, convId, seq, () => ({ kind: "recall" }));
  const edit = (actor: Uid, convId: string, seq: number, text: string) =>
    change(actor, convId, seq, () => ({ kind: "edit", text, atMs: EDITED_AT }));
  const react = (actor: Uid, convId: string, seq: number, emoji: string, add = true) =>
    change(actor, convId, seq, () => ({ kind: "react", emoji, add, maxDistinct: 3 }));

  const history = (uid: Uid, convId: string) => s.messages.history(uid, convId, everything);
  const at = (page: StoredMessage[], seq: number) => page.find((m) => m.seq === seq);
  const replyTo = (m: StoredMessage): MessageExtras => ({
    reply: { seq: m.seq, msgId: m.msgId, sender: m.sender, kind: m.kind, snippet: m.text, recalled: false },
  });

  it("stores custom content, forward origin and replies; a plain message reads as before", async () => {
    const { a, b, convId } = pair();
    const plain = await send(a, b, "hello world");
    const custom = { type: "card", payloadJson: '{"title":"x"}' };
    const card = await send(a, b, "", { kind: MessageKind.CUSTOM, extras: { custom } });
    const forwarded = { convId: "p:1:2", msgId: "123", sender: "1" as Uid, sentAtMs: String(SENT_AT - 5) };
    const fwd = await send(b, a, "passed on", { extras: { forwarded } });
    const reply = await send(b, a, "indeed", { extras: replyTo(plain) });
    expect(card.custom).toEqual(custom);
    expect(fwd.forwarded).toEqual(forwarded);
    expect(reply.reply).toMatchObject({ seq: 1, msgId: plain.msgId, sender: a, kind: MessageKind.TEXT });

    const page = await history(b, convId);
    expect(page.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(at(page, 1)).toEqual(plain);
    expect(at(page, 2)?.custom).toEqual(custom);
    expect(at(page, 3)?.forwarded).toEqual(forwarded);
    expect(at(page, 4)?.reply).toEqual({
      seq: 1,
      msgId: plain.msgId,
      sender: a,
      kind: MessageKind.TEXT,
      snippet: "hello world",
      recalled: false,
    });
    const synced = await s.messages.pending(b, 100);
    expect(synced.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(synced.messages[1]?.custom).toEqual(custom);
    expect(synced.messages[3]?.reply?.snippet).toBe("hello world");
    expect(await s.messages.message(a, convId, 4)).toEqual(at(page, 4));

    // The quote is read from the quoted message as it is now: edited, then recalled.
    await edit(a, convId, 1, "hello there");
    expect((await s.messages.message(b, convId, 4))?.reply).toMatchObject({ snippet: "hello there", recalled: false });
    await recall(a, convId, 1);
    expect((await s.messages.message(b, convId, 4))?.reply).toMatchObject({ snippet: "", recalled: true });
    const after = await s.messages.pending(a, 100);
    expect(after.messages.find((m) => m.seq === 4)?.reply).toMatchObject({ snippet: "", recalled: true });
  });

  it("stores a reply's extras when its batch is refused for a resend beside it", async () => {
    const { a, b, convId } = pair();
    const first = await send(a, b, "first", { clientMsgId: "same" });
    const [again, reply] = await Promise.all([
      send(a, b, "first (resent)", { clientMsgId: "same" }),
      send(a, b, "re", { extras: replyTo(first) }),
    ]);
    expect(again).toMatchObject({ seq: 1, text: "first" });
    expect(reply).toMatchObject({ seq: 2, reply: { seq: 1, msgId: first.msgId } });
    expect((await s.messages.message(b, convId, 2))?.reply?.snippet).toBe("first");
  });

  it("recalls text, file and custom content in storage, with one event at the next seq", async () => {
    const { a, b, convId } = pair();
    const file = { id: id(), name: "plan.pdf", size: "1234", contentType: "application/pdf" };
    const text = await send(a, b, "oops");
    const withFile = await send(a, b, "caption", { kind: MessageKind.FILE, file });
    const custom = await send(a, b, "", {
      kind: MessageKind.CUSTOM,
      extras: { custom: { type: "poll", payloadJson: "{}" }, ...replyTo(text) },
    });

    const first = await recall(a, convId, text.seq);
    expect(first.event).toMatchObject({
      convId,
      seq: 4,
      sender: a,
      recipient: b,
      kind: MessageKind.RECALL_EVENT,
      text: "",
      targetSeq: text.seq,
      target: { seq: text.seq, text: "", recalled: true },
    });
    expect(first.target).toEqual(first.event?.target);
    await recall(a, convId, withFile.seq);
    await recall(a, convId, custom.seq);

    const stored = await s.rows(
      convId,
      "SELECT seq, body, file_json, extras_json, recalled FROM messages WHERE conv_id = ? AND seq <= 3 ORDER BY seq",
      [convId],
    );
    expect(stored.map((r) => [r.body, r.file_json, Number(r.recalled)])).toEqual([
      ["", null, 1],
      ["", null, 1],
      ["", null, 1],
    ]);
    // The custom payload is content and went; the quote is a reference and stayed.
    expect(String(stored[2]?.extras_json)).not.toContain("poll");
    expect(String(stored[2]?.extras_json)).toContain('"reply"');

    const again = await recall(a, convId, text.seq);
    expect(again.event).toBeUndefined();
    expect(again.target).toMatchObject({ seq: text.seq, recalled: true });

    const page = await history(b, convId);
    expect(page.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(at(page, 2)).toMatchObject({ recalled: true, text: "" });
    expect(at(page, 2)?.file).toBeUndefined();
    expect(at(page, 3)?.custom).toBeUndefined();
    expect(at(page, 3)?.reply).toMatchObject({ seq: 1, recalled: true, snippet: "" });
    expect(at(page, 5)).toMatchObject({ kind: MessageKind.RECALL_EVENT, targetSeq: 2, target: { recalled: true } });
    expect((await send(b, a, "next")).seq).toBe(7);
  });

  it("edits a text, counting the edits; an event's target is the message as it is now", async () => {
    const { a, b, convId } = pair();
    const m = await send(a, b, "v1");
    const one = await edit(a, convId, m.seq, "v2");
    expect(one.event).toMatchObject({
      seq: 2,
      kind: MessageKind.EDIT_EVENT,
      targetSeq: 1,
      target: { text: "v2", editCount: 1, editedAtMs: String(EDITED_AT) },
    });
    const two = await edit(a, convId, m.seq, "v3");
    expect(two.target).toMatchObject({ text: "v3", editCount: 2 });
    const page = await history(b, convId);
    expect(at(page, 1)).toMatchObject({ text: "v3", editCount: 2, editedAtMs: String(EDITED_AT) });
    expect(at(page, 2)).toMatchObject({ kind: MessageKind.EDIT_EVENT, target: { text: "v3", editCount: 2 } });
  });

  it("completes an event's target that quotes a message outside the page", async () => {
    const { a, b, convId } = pair();
    const quoted = await send(a, b, "the question");
    const filler = await send(a, b, "filler");
    const reply = await send(b, a, "the answer", { extras: replyTo(quoted) });
    await edit(b, convId, reply.seq, "the better answer");
    const [event] = await s.messages.history(a, convId, { afterSeq: filler.seq + 1, beforeSeq: 0, limit: 10 });
    expect(event).toMatchObject({ kind: MessageKind.EDIT_EVENT, target: { text: "the better answer" } });
    expect(event?.target?.reply).toMatchObject({ seq: quoted.seq, snippet: "the question", recalled: false });
  });

  it("counts reactions per emoji, each reader's own marked, within maxDistinct", async () => {
    const { a, b, convId } = pair();
    const m = await send(a, b, "react to me");
    const first = await react(a, convId, m.seq, "👍");
    expect(first.event).toMatchObject({
      seq: 2,
      kind: MessageKind.REACTION_EVENT,
      recipient: b,
      targetSeq: 1,
      reaction: { emoji: "👍", add: true },
      target: { reactions: { counts: [{ emoji: "👍", count: 1, me: false }] } },
    });
    const twice = await react(a, convId, m.seq, "👍");
    expect(twice.event).toBeUndefined();
    expect(twice.target.reactions?.counts).toEqual([{ emoji: "👍", count: 1, me: false }]);
    expect((await react(b, convId, m.seq, "👍")).target.reactions?.counts).toEqual([
      { emoji: "👍", count: 2, me: false },
    ]);
    await react(a, convId, m.seq, "❤️");

    const mine = async (uid: Uid) => at(await history(uid, convId), m.seq)?.reactions?.counts;
    expect(await mine(a)).toEqual([
      { emoji: "👍", count: 2, me: true },
      { emoji: "❤️", count: 1, me: true },
    ]);
    expect(await mine(b)).toEqual([
      { emoji: "👍", count: 2, me: true },
      { emoji: "❤️", count: 1, me: false },
    ]);
    expect((await s.messages.pending(b, 100)).messages[0]?.reactions?.counts[1]).toEqual({
      emoji: "❤️",
      count: 1,
      me: false,
    });

    const removed = await react(b, convId, m.seq, "👍", false);
    expect(removed.event).toMatchObject({ reaction: { emoji: "👍", add: false } });
    expect(await mine(b)).toEqual([
      { emoji: "👍", count: 1, me: false },
      { emoji: "❤️", count: 1, me: false },
    ]);
    expect((await react(b, convId, m.seq, "👍", false)).event).toBeUndefined();

    // A third distinct emoji fits maxDistinct (3), a fourth does not; an existing one still does.
    await react(b, convId, m.seq, "😂");
    expect(await codeOf(react(b, convId, m.seq, "🎉"))).toBe(ErrorCode.REACTION_LIMIT);
    expect((await react(b, convId, m.seq, "❤️")).target.reactions?.counts).toEqual([
      { emoji: "👍", count: 1, me: false },
      { emoji: "❤️", count: 2, me: false },
      { emoji: "😂", count: 1, me: false },
    ]);
    // An emoji nobody has any more is gone from the counts, and its place is free again.
    await react(b, convId, m.seq, "😂", false);
    await react(b, convId, m.seq, "🎉");
    expect((await s.messages.message(a, convId, m.seq))?.reactions?.counts.map((c) => c.emoji)).toEqual([
      "👍",
      "❤️",
      "🎉",
    ]);

    const reactionRows = "SELECT uid FROM message_reactions WHERE conv_id = ? AND seq = ?";
    if (s.holders && s.ownerOf) expect(await s.holders(reactionRows, [convId, m.seq])).toEqual([s.ownerOf(convId)]);
    await recall(a, convId, m.seq);
    expect(await s.rows(convId, reactionRows, [convId, m.seq])).toEqual([]);
    expect((await s.messages.message(b, convId, m.seq))?.reactions).toBeUndefined();
  });

  it("refuses what decide refuses, missing and event targets, and non-members, using no seq", async () => {
    const { a, b, convId } = pair();
    const m = await send(a, b, "mine");
    const event = (await edit(a, convId, m.seq, "mine, edited")).event;
    const refuse = () => {
      throw new AppError(ErrorCode.NOT_MESSAGE_SENDER, "only its sender");
    };
    expect(await codeOf(change(b, convId, m.seq, refuse))).toBe(ErrorCode.NOT_MESSAGE_SENDER);
    expect(await codeOf(recall(a, convId, 99))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(recall(a, convId, event?.seq ?? 0))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(recall(a, convIdForPair(a, id()), 1))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(recall(id(), convId, m.seq))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(s.messages.message(id(), convId, m.seq))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await s.messages.message(a, convId, 99)).toBeNull();
    expect(await s.messages.message(a, convId, event?.seq ?? 0)).toMatchObject({
      kind: MessageKind.EDIT_EVENT,
      target: { text: "mine, edited" },
    });
    expect((await history(a, convId)).map((x) => x.seq)).toEqual([1, 2]);
    expect((await send(b, a, "next")).seq).toBe(3);
  });

  it("deletes for one member alone; the other still sees the message", async () => {
    const { a, b, convId } = pair();
    const [one, two] = [await send(a, b, "one"), await send(a, b, "two")];
    await send(b, a, "re two", { extras: replyTo(two) });
    const before = await history(a, convId);
    await s.messages.hide(b, convId, [two.seq, two.seq, 99, 0, -1]);

    const page = await history(b, convId);
    expect(at(page, two.seq)).toMatchObject({ seq: two.seq, msgId: two.msgId, text: "", deletedForMe: true });
    expect(at(page, one.seq)).toEqual(one);
    // A quote of what the reader deleted shows no content either.
    expect(at(page, 3)?.reply).toMatchObject({ seq: two.seq, snippet: "" });
    expect((await s.messages.pending(b, 100)).messages.find((m) => m.seq === two.seq)?.deletedForMe).toBe(true);
    expect(await s.messages.message(b, convId, two.seq)).toMatchObject({ text: "", deletedForMe: true });
    // The other member's view is what it was: nothing hidden, nothing looked up differently.
    expect(await history(a, convId)).toEqual(before);
    expect((await s.messages.message(a, convId, two.seq))?.deletedForMe).toBeUndefined();

    const count = "SELECT hidden_count FROM conversation_members WHERE conv_id = ? AND uid = ?";
    expect(Number((await s.rows(convId, count, [convId, b]))[0]?.hidden_count)).toBe(1);
    await s.messages.hide(b, convId, [two.seq]);
    expect(Number((await s.rows(convId, count, [convId, b]))[0]?.hidden_count)).toBe(1);
    expect(Number((await s.rows(convId, count, [convId, a]))[0]?.hidden_count)).toBe(0);
    const marks = "SELECT seq FROM message_hidden WHERE conv_id = ? AND uid = ?";
    if (s.holders && s.ownerOf) expect(await s.holders(marks, [convId, b])).toEqual([s.ownerOf(convId)]);
    expect(await codeOf(s.messages.hide(id(), convId, [1]))).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("marks a group conversation mentioned for the mentioned members until they read past it", async () => {
    const [owner, x, y, z] = [id(), id(), id(), id()];
    const groupId = id();
    const convId = groupConvId(groupId);
    await s.groups.create({ groupId, name: "mentions", owner, members: [x, y, z], maxMembers: 10 });
    const post = async (extras?: MessageExtras) =>
      (
        await s.groups.append({
          groupId,
          msgId: id(),
          sender: owner,
          clientMsgId: `c-${id()}`,
          kind: MessageKind.TEXT,
          text: "@someone",
          sentAtMs: SENT_AT,
          extras,
        })
      ).message;
    const mentioned = async (uid: Uid) =>
      (await s.conversations.list(uid, 10)).find((c) => c.convId === convId)?.mentioned;

    await post();
    expect(await mentioned(x)).toBe(false);
    const toX = await post({ mentions: { uids: [x], all: false } });
    expect(toX.mentions).toEqual({ uids: [x], all: false });
    expect(at(await history(y, convId), toX.seq)?.mentions).toEqual({ uids: [x], all: false });
    expect([await mentioned(x), await mentioned(y), await mentioned(owner)]).toEqual([true, false, false]);
    await s.conversations.markRead(x, convId, toX.seq);
    expect(await mentioned(x)).toBe(false);

    const toAll = await post({ mentions: { uids: [], all: true } });
    expect([await mentioned(x), await mentioned(y), await mentioned(z), await mentioned(owner)]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    await s.conversations.markRead(z, convId, toAll.seq);
    expect([await mentioned(z), await mentioned(y)]).toEqual([false, true]);

    const { a, b } = pair();
    await send(a, b, "no mentions in 1:1");
    expect((await s.conversations.list(b, 10))[0]?.mentioned).toBe(false);
  });

  it("shares a file into another conversation", async () => {
    const { a, b, convId } = pair();
    const fileId = id();
    const meta = { id: fileId, owner: a, convId, name: "a.txt", size: 3, contentType: "text/plain", createdAt: 1 };
    await s.files.create(meta);
    expect((await s.files.byId(fileId))?.sharedWith ?? []).toEqual([]);
    const elsewhere = convIdForPair(b, id());
    expect(await s.files.share(fileId, elsewhere)).toBe(true);
    expect(await s.files.share(fileId, elsewhere)).toBe(true);
    expect(await s.files.byId(fileId)).toEqual({ ...meta, sharedWith: [elsewhere] });
    expect(await s.files.share(id(), elsewhere)).toBe(false);
    const shares = "SELECT conv_id FROM file_shares WHERE file_id = ?";
    if (s.holders && s.ownerOf) expect(await s.holders(shares, [fileId])).toEqual([s.ownerOf(`file:${fileId}`)]);
  });
});

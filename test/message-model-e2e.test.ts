import type { ChatClient, ChatClientOptions } from "@shardchat/sdk";
import { applyMessageEvent, isMessageEvent } from "@shardchat/sdk";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChatMessage,
  type DeletedForMePush,
  DeviceKind,
  MessageKind,
  type TypingPush,
} from "../packages/protocol/src/wire.js";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedFileMetaStore } from "../src/storage/sharded/file-meta-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import type { Shards } from "../src/storage/sharded/shards.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";

// The message model (issue 16) end to end: two chat nodes in this process over three MariaDB
// shards and Redis; users on both nodes, conversations on different shards, and a device that
// was offline catching up on every kind of event by sync.

const RECALL_WINDOW_SECONDS = 2;

let cluster: ChatCluster;
let config: Config;
let shards: Shards;
let files: ShardedFileMetaStore;
/** Users not yet in any test (a fresh pair per test keeps them apart). */
let users: ClusterUser[] = [];

interface Seen {
  client: ChatClient;
  uid: Uid;
  nodeId: string;
  messages: ChatMessage[];
  typing: TypingPush[];
  deleted: DeletedForMePush[];
  of(convId: string): ChatMessage[];
}

/** A logged-in client that records what reaches it (listening before login: pushes may follow at once). */
async function online(user: ClusterUser, options: ChatClientOptions = {}): Promise<Seen> {
  const seen: Seen = {
    client: undefined as unknown as ChatClient,
    uid: user.uid,
    nodeId: user.nodeId,
    messages: [],
    typing: [],
    deleted: [],
    of: (convId) => seen.messages.filter((m) => m.convId === convId),
  };
  seen.client = await cluster.connect(user, {
    ...options,
    listen: (client) => {
      client.on("message", (m) => seen.messages.push(m));
      client.on("typing", (t) => seen.typing.push(t));
      client.on("deletedForMe", (d) => seen.deleted.push(d));
    },
  });
  return seen;
}

function take(nodeId: string): ClusterUser {
  return cluster.take(nodeId);
}

/** A client's view of a conversation after applying every event it got, as README says a client does. */
function applied(messages: ChatMessage[], self: Uid): Map<number, ChatMessage> {
  const view = new Map<number, ChatMessage>();
  for (const m of [...messages].sort((a, b) => a.seq - b.seq)) {
    if (!isMessageEvent(m)) view.set(m.seq, m);
    else {
      const target = applyMessageEvent(view.get(m.targetSeq ?? 0), m, self);
      if (target) view.set(target.seq, target);
    }
  }
  return view;
}

beforeAll(async () => {
  cluster = await startChatCluster({
    tag: "mm",
    nodeIds: ["n1", "n2"],
    usersPerNode: 12,
    settings: {
      GROUP_JOIN_CONSENT: "none",
      MESSAGE_RECALL_WINDOW_SECONDS: RECALL_WINDOW_SECONDS,
      MESSAGE_REACTIONS_MAX_DISTINCT: 3,
      MESSAGE_CUSTOM_MAX_BYTES: 200,
      TYPING_MIN_INTERVAL_MS: 60_000,
    },
    stores: (sharded) => {
      files = new ShardedFileMetaStore(sharded);
      return {
        messages: new ShardedMessageStore(sharded),
        groups: new ShardedGroupStore(sharded),
        conversations: new ShardedConversationStore(sharded),
        files,
      };
    },
  });
  ({ config, shards } = cluster);
  users = [cluster.take("n1")];
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe("the message model across two chat nodes and three shards", () => {
  it("reply, reactions, edit and recall reach the peer on the other node as events with the target's state", async () => {
    const alice = await online(take("n1"));
    const bob = await online(take("n2"));
    const convId = convIdForPair(alice.uid, bob.uid);
    const first = await alice.client.sendText(bob.uid, "first words");
    await until("bob has the first message", () => bob.of(convId).length === 1);

    const reply = await bob.client.sendMessage({ toUid: alice.uid }, { text: "a reply", replyTo: first.seq });
    await until("alice has the reply", () => alice.of(convId).length === 1);
    expect(alice.of(convId)[0]?.reply).toMatchObject({ seq: first.seq, msgId: first.msgId, snippet: "first words" });

    const reacted = await bob.client.react(convId, first.seq, "👍");
    expect(reacted.event).toMatchObject({ kind: MessageKind.REACTION_EVENT, seq: reply.seq + 1, targetSeq: first.seq });
    expect(reacted.target?.reactions?.counts).toEqual([{ emoji: "👍", count: 1, me: false }]);
    // The same reaction again changes nothing: no event.
    expect((await bob.client.react(convId, first.seq, "👍")).event).toBeUndefined();
    await alice.client.react(convId, first.seq, "👍");
    const edited = await alice.client.edit(convId, first.seq, "first words, edited");
    expect(edited.target).toMatchObject({ text: "first words, edited", editCount: 1 });

    await until("bob has two events", () => bob.of(convId).filter(isMessageEvent).length === 2);
    // Bob's own change comes back as its answer, not as a push: a client applies both.
    const bobView = applied([...bob.of(convId), reacted.event as ChatMessage], bob.uid);
    expect(bobView.get(first.seq)).toMatchObject({ text: "first words, edited", editCount: 1 });
    expect(bobView.get(first.seq)?.reactions?.counts).toEqual([{ emoji: "👍", count: 2, me: true }]);

    // Only the sender edits; a reader's history says who reacted.
    expect(await codeOf(bob.client.edit(convId, first.seq, "not mine"))).toBe(ErrorCode.NOT_MESSAGE_SENDER);
    const asBob = await bob.client.history({ convId });
    expect(asBob.find((m) => m.seq === first.seq)?.reactions?.counts).toEqual([{ emoji: "👍", count: 2, me: true }]);
    // The reply's quote follows the quoted message as it is now.
    expect(asBob.find((m) => m.seq === reply.seq)?.reply?.snippet).toBe("first words, edited");

    const recalled = await alice.client.recall(convId, first.seq);
    expect(recalled.target).toMatchObject({ recalled: true, text: "" });
    expect(recalled.target?.reactions).toBeUndefined();
    expect((await alice.client.recall(convId, first.seq)).event).toBeUndefined();
    await until("bob has the recall", () => bob.of(convId).some((m) => m.kind === MessageKind.RECALL_EVENT));
    expect(applied(bob.of(convId), bob.uid).get(first.seq)).toMatchObject({ recalled: true, text: "" });
    expect(await codeOf(bob.client.react(convId, first.seq, "❤️"))).toBe(ErrorCode.MESSAGE_RECALLED);
    expect(await codeOf(alice.client.edit(convId, first.seq, "again"))).toBe(ErrorCode.MESSAGE_RECALLED);

    // Gapless: every seq from 1 to the last is one message or event.
    const all = await alice.client.history({ convId, afterSeq: 0, limit: 50 });
    const newest = await alice.client.history({ convId });
    expect(newest.map((m) => m.seq)).toEqual(Array.from({ length: newest.length }, (_, i) => i + 1));
    expect(all.find((m) => m.seq === reply.seq)?.reply).toMatchObject({ recalled: true, snippet: "" });
    // The stored text is erased, not hidden.
    const shard = shards.instanceFor(convId).id;
    const [rows] = await shards
      .pool(shard)
      .query<RowDataPacket[]>("SELECT body FROM messages WHERE conv_id = ? AND seq = ?", [convId, first.seq]);
    expect(rows[0]?.body).toBe("");
  });

  it("recall is the sender's within the window, a group admin's at any time", async () => {
    const owner = await online(take("n1"));
    const member = await online(take("n2"));
    const group = await owner.client.createGroup("recalls", [member.uid]);
    const late = await member.client.sendGroupText(group.groupId, "said too late");
    const fresh = await member.client.sendGroupText(group.groupId, "said just now");
    await new Promise((r) => setTimeout(r, RECALL_WINDOW_SECONDS * 1000 + 300));
    expect(await codeOf(member.client.recall(group.convId, late.seq))).toBe(ErrorCode.CHANGE_WINDOW_CLOSED);
    expect(await codeOf(member.client.recall(group.convId, 999))).toBe(ErrorCode.NOT_FOUND);
    const byAdmin = await owner.client.recall(group.convId, fresh.seq);
    expect(byAdmin.target).toMatchObject({ recalled: true });
    const ownerPost = await owner.client.sendGroupText(group.groupId, "from the owner");
    expect(await codeOf(member.client.recall(group.convId, ownerPost.seq))).toBe(ErrorCode.NOT_MESSAGE_SENDER);
  });

  it("an offline member catches up on every kind of event by sync, mentions included", async () => {
    const owner = await online(take("n1"));
    const carol = take("n2");
    const group = await owner.client.createGroup("catch-up", [carol.uid]);
    const post = await owner.client.sendMessage(
      { groupId: group.groupId },
      { text: `hi @carol`, mentions: { uids: [carol.uid] } },
    );
    const card = await owner.client.sendMessage(
      { groupId: group.groupId },
      { custom: { type: "location", payloadJson: JSON.stringify({ lat: 52.5, lon: 13.4 }) } },
    );
    await owner.client.react(group.convId, post.seq, "🎉");
    await owner.client.edit(group.convId, post.seq, "hi @carol, welcome");
    const gone = await owner.client.sendGroupText(group.groupId, "oops");
    await owner.client.recall(group.convId, gone.seq);

    const device = await online(carol, { autoAck: false });
    const list = await device.client.conversations();
    expect(list.find((c) => c.convId === group.convId)?.mentioned).toBe(true);
    const synced = (await device.client.syncAll()).filter((m) => m.convId === group.convId);
    expect(synced.map((m) => m.seq)).toEqual(Array.from({ length: synced.length }, (_, i) => i + 1));
    expect(synced.filter(isMessageEvent).map((m) => m.kind)).toEqual([
      MessageKind.REACTION_EVENT,
      MessageKind.EDIT_EVENT,
      MessageKind.RECALL_EVENT,
    ]);
    const view = applied(synced, carol.uid);
    expect(view.get(post.seq)).toMatchObject({ text: "hi @carol, welcome", editCount: 1 });
    expect(view.get(post.seq)?.mentions).toEqual({ uids: [carol.uid], all: false });
    expect(view.get(post.seq)?.reactions?.counts).toEqual([{ emoji: "🎉", count: 1, me: false }]);
    expect(view.get(card.seq)).toMatchObject({ kind: MessageKind.CUSTOM, custom: { type: "location" } });
    expect(view.get(gone.seq)).toMatchObject({ recalled: true, text: "" });
    // Reading past the mention clears the mark.
    await device.client.markRead(group.convId, post.seq);
    expect((await device.client.conversations()).find((c) => c.convId === group.convId)?.mentioned).toBe(false);
  });

  it("mentions: members only, everyone only from admins", async () => {
    const owner = await online(take("n1"));
    const member = await online(take("n2"));
    const group = await owner.client.createGroup("mentions", [member.uid]);
    const everyone = member.client.sendMessage({ groupId: group.groupId }, { text: "@all", mentions: { all: true } });
    expect(await codeOf(everyone)).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    const stranger = users[0]?.uid ?? "1";
    const outsider = owner.client.sendMessage(
      { groupId: group.groupId },
      { text: "@x", mentions: { uids: [stranger] } },
    );
    expect(await codeOf(outsider)).toBe(ErrorCode.INVALID_ARGUMENT);
    await owner.client.sendMessage({ groupId: group.groupId }, { text: "@everyone", mentions: { all: true } });
    const list = await member.client.conversations();
    expect(list.find((c) => c.convId === group.convId)?.mentioned).toBe(true);
  });

  it("custom messages are checked: JSON, and the payload under its limit", async () => {
    const alice = await online(take("n1"));
    const bob = await online(take("n2"));
    const big = alice.client.sendMessage(
      { toUid: bob.uid },
      { custom: { type: "poll", payloadJson: JSON.stringify({ q: "x".repeat(300) }) } },
    );
    expect(await codeOf(big)).toBe(ErrorCode.PAYLOAD_TOO_LARGE);
    const broken = alice.client.sendMessage({ toUid: bob.uid }, { custom: { type: "poll", payloadJson: "{nope" } });
    expect(await codeOf(broken)).toBe(ErrorCode.INVALID_ARGUMENT);
    await alice.client.sendMessage({ toUid: bob.uid }, { custom: { type: "poll", payloadJson: '{"q":"tea?"}' } });
    const convId = convIdForPair(alice.uid, bob.uid);
    await until("bob has the card", () => bob.of(convId).length === 1);
    expect(bob.of(convId)[0]).toMatchObject({
      kind: MessageKind.CUSTOM,
      custom: { type: "poll", payloadJson: '{"q":"tea?"}' },
    });
  });

  it("typing reaches the peer on the other node, at most once per interval, and is refused outside the conversation", async () => {
    const alice = await online(take("n1"));
    const bob = await online(take("n2"));
    const convId = convIdForPair(alice.uid, bob.uid);
    alice.client.typing(convId);
    await until("bob sees alice typing", () => bob.typing.length === 1);
    expect(bob.typing[0]).toMatchObject({ convId, uid: alice.uid, expiresInMs: config.TYPING_TTL_MS });
    alice.client.typing(convId);
    await alice.client.heartbeat();
    await new Promise((r) => setTimeout(r, 200));
    expect(bob.typing).toHaveLength(1);
    const group = await alice.client.createGroup("typing", []);
    expect(await codeOf(bob.client.request("typingReq", { convId: group.convId }, "typingResp"))).toBe(
      ErrorCode.NOT_GROUP_MEMBER,
    );
  });

  it("delete for me hides a message on all of one user's devices and nowhere else", async () => {
    const alice = await online(take("n1"));
    const bobUser = take("n2");
    const bob = await online(bobUser);
    const bobPhone = await online(bobUser, { device: DeviceKind.MOBILE });
    const convId = convIdForPair(alice.uid, bob.uid);
    const sent = await alice.client.sendText(bob.uid, "keep or drop");
    await until("bob has it", () => bob.of(convId).length === 1);
    await bob.client.deleteForMe(convId, [sent.seq]);
    await until("bob's phone is told", () => bobPhone.deleted.length === 1);
    expect(bobPhone.deleted[0]).toEqual({ convId, seqs: [sent.seq] });
    const bobs = await bob.client.history({ convId });
    expect(bobs[0]).toMatchObject({ seq: sent.seq, deletedForMe: true, text: "" });
    const alices = await alice.client.history({ convId });
    expect(alices[0]).toMatchObject({ seq: sent.seq, text: "keep or drop" });
    expect(alices[0]?.deletedForMe).toBeFalsy();
    expect(await codeOf(bob.client.deleteForMe("p:1:2", [1]))).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("forward copies a message into a group with its origin, and grants the group the file", async () => {
    const alice = await online(take("n1"));
    const bob = await online(take("n2"));
    const convId = convIdForPair(alice.uid, bob.uid);
    const fileId = new Snowflake({ workerId: 30 }).next();
    await files.create({
      id: fileId,
      owner: alice.uid,
      convId,
      name: "plan.pdf",
      size: 1234,
      contentType: "application/pdf",
      createdAt: Date.now(),
    });
    const original = await alice.client.sendFile(
      bob.uid,
      { id: fileId, name: "plan.pdf", size: 1234, contentType: "application/pdf" },
      "the plan",
    );
    const group = await bob.client.createGroup("forwards", [alice.uid]);
    const copied = await bob.client.forward({ convId, seq: original.seq }, { groupId: group.groupId });
    expect(copied.convId).toBe(group.convId);
    await until("alice gets the copy", () => alice.of(group.convId).length === 1);
    expect(alice.of(group.convId)[0]).toMatchObject({
      kind: MessageKind.FILE,
      text: "the plan",
      sender: bob.uid,
      file: { id: fileId, name: "plan.pdf" },
      forwarded: { convId, msgId: original.msgId, sender: alice.uid },
    });
    expect((await files.byId(fileId))?.sharedWith).toEqual([group.convId]);
    // Only a participant of the original forwards it; an event is not content.
    const outsider = await online(take("n1"));
    expect(await codeOf(outsider.client.forward({ convId, seq: original.seq }, { toUid: bob.uid }))).toBe(
      ErrorCode.NOT_PARTICIPANT,
    );
    const reaction = await alice.client.react(convId, original.seq, "👀");
    const event = reaction.event?.seq ?? 0;
    expect(await codeOf(bob.client.forward({ convId, seq: event }, { toUid: alice.uid }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
  });

  it("reactions are bounded per message: a new emoji past the limit is refused, an existing one still counts", async () => {
    const alice = await online(take("n1"));
    const bob = await online(take("n2"));
    const convId = convIdForPair(alice.uid, bob.uid);
    const sent = await alice.client.sendText(bob.uid, "react to me");
    for (const emoji of ["1️⃣", "2️⃣", "3️⃣"]) await alice.client.react(convId, sent.seq, emoji);
    expect(await codeOf(bob.client.react(convId, sent.seq, "4️⃣"))).toBe(ErrorCode.REACTION_LIMIT);
    const more = await bob.client.react(convId, sent.seq, "1️⃣");
    expect(more.target?.reactions?.counts.find((c) => c.emoji === "1️⃣")?.count).toBe(2);
    expect(await codeOf(bob.client.react(convId, sent.seq, "a b"))).toBe(ErrorCode.INVALID_ARGUMENT);
    const removed = await alice.client.react(convId, sent.seq, "2️⃣", false);
    expect(removed.target?.reactions?.counts.map((c) => c.emoji)).toEqual(["1️⃣", "3️⃣"]);
  });
});

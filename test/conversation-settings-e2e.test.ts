import type { ChatClient, ChatClientOptions } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, type ConversationSettingsPush, DeviceKind } from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedFileMetaStore } from "../src/storage/sharded/file-meta-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";

// Conversation settings and clear history (issue 17) end to end: two chat nodes in this process
// over three MariaDB shards and Redis. A user's devices are on one node (the ring's), its peer on
// the other: what one device changes reaches the user's other devices, and nobody else.

const plain = { pinned: false, muted: false, hidden: false };

let cluster: ChatCluster;

interface Device {
  client: ChatClient;
  uid: Uid;
  nodeId: string;
  messages: ChatMessage[];
  settings: ConversationSettingsPush[];
  of(convId: string): ChatMessage[];
}

/** A logged-in device that records what reaches it. */
async function online(user: ClusterUser, options: ChatClientOptions = {}): Promise<Device> {
  const device: Device = {
    client: undefined as unknown as ChatClient,
    uid: user.uid,
    nodeId: user.nodeId,
    messages: [],
    settings: [],
    of: (convId) => device.messages.filter((m) => m.convId === convId),
  };
  device.client = await cluster.connect(user, {
    ...options,
    listen: (client) => {
      client.on("message", (m) => device.messages.push(m));
      client.on("conversationSettings", (p) => device.settings.push(p));
    },
  });
  return device;
}

/** A user's desktop and phone (on the user's node) and a peer on the other node. */
async function threeDevices(): Promise<{ desk: Device; phone: Device; peer: Device; user: ClusterUser }> {
  const user = cluster.take("n1");
  const desk = await online(user, { device: DeviceKind.DESKTOP });
  const phone = await online(user, { device: DeviceKind.MOBILE });
  const peer = await online(cluster.take("n2"));
  return { desk, phone, peer, user };
}

async function listed(device: Device, convId: string) {
  return (await device.client.conversations()).find((c) => c.convId === convId);
}

beforeAll(async () => {
  cluster = await startChatCluster({
    tag: "cs",
    nodeIds: ["n1", "n2"],
    usersPerNode: 8,
    settings: { GROUP_JOIN_CONSENT: "none" },
    stores: (sharded) => ({
      messages: new ShardedMessageStore(sharded),
      groups: new ShardedGroupStore(sharded),
      conversations: new ShardedConversationStore(sharded),
      files: new ShardedFileMetaStore(sharded),
    }),
  });
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe("conversation settings across two chat nodes and three shards", () => {
  it("settings changed on one device reach the user's other device; the peer on the other node is unaffected", async () => {
    const { desk, phone, peer } = await threeDevices();
    const convId = convIdForPair(desk.uid, peer.uid);
    await desk.client.sendText(peer.uid, "hello");
    await until("the peer has the message", () => peer.of(convId).length === 1);

    expect(await desk.client.conversationSettings(convId, { pinned: true, muted: true })).toEqual({
      pinned: true,
      muted: true,
      hidden: false,
    });
    await until("the phone is told", () => phone.settings.length === 1);
    expect(phone.settings[0]).toEqual({
      convId,
      settings: { pinned: true, muted: true, hidden: false },
      clearedSeq: 0,
    });
    // Not pushed back to the device that asked, nor to the peer.
    expect(desk.settings).toEqual([]);
    expect(peer.settings).toEqual([]);

    // Fields left out stay; both devices list the same settings; the peer's are its own.
    expect(await phone.client.conversationSettings(convId, { muted: false })).toEqual({ ...plain, pinned: true });
    await until("the desktop is told", () => desk.settings.length === 1);
    expect((await listed(desk, convId))?.settings).toEqual({ ...plain, pinned: true });
    expect((await listed(phone, convId))?.settings).toEqual({ ...plain, pinned: true });
    expect((await listed(peer, convId))?.settings).toEqual(plain);
    expect(peer.settings).toEqual([]);

    // Pinned first: a newer conversation of the user comes after the pinned one.
    const other = cluster.take("n2");
    await phone.client.sendText(other.uid, "newer");
    const order = (await desk.client.conversations()).map((c) => c.convId);
    expect(order.slice(0, 2)).toEqual([convId, convIdForPair(desk.uid, other.uid)]);
  });

  it("hides a conversation until the next message", async () => {
    const { desk, phone, peer } = await threeDevices();
    const convId = convIdForPair(desk.uid, peer.uid);
    await peer.client.sendText(desk.uid, "one");
    await until("the desktop has it", () => desk.of(convId).length === 1);
    expect(await phone.client.conversationSettings(convId, { hidden: true })).toEqual({ ...plain, hidden: true });
    await until("the desktop is told", () => desk.settings.length === 1);
    expect(await listed(desk, convId)).toBeUndefined();
    expect(await listed(peer, convId)).toBeDefined();

    const two = await peer.client.sendText(desk.uid, "two");
    await until("the desktop has the next one", () => desk.of(convId).length === 2);
    const back = await listed(desk, convId);
    expect(back).toMatchObject({ lastSeq: two.seq, settings: { ...plain, hidden: false } });
    expect(back?.lastMessage?.text).toBe("two");
  });

  it("clears history for the user alone: first_seq in history and the list; the peer keeps its history", async () => {
    const { desk, phone, peer, user } = await threeDevices();
    const convId = convIdForPair(desk.uid, peer.uid);
    for (const text of ["m1", "m2", "m3"]) await peer.client.sendText(desk.uid, text);
    await until("the desktop has three", () => desk.of(convId).length === 3);

    expect(await desk.client.clearHistory(convId)).toBe(3);
    await until("the phone is told", () => phone.settings.length === 1);
    expect(phone.settings[0]).toMatchObject({ convId, clearedSeq: 3 });
    expect(phone.settings[0]?.settings).toBeUndefined();
    expect(peer.settings).toEqual([]);

    expect(await phone.client.historyPage({ convId })).toEqual({ messages: [], firstSeq: 4 });
    const mine = await listed(phone, convId);
    expect(mine).toMatchObject({ lastSeq: 3, readSeq: 3, unread: 0, firstSeq: 4 });
    expect(mine?.lastMessage).toBeUndefined();
    // Never backwards.
    expect(await phone.client.clearHistory(convId, 1)).toBe(3);

    // The peer's history and list are whole.
    const theirs = await peer.client.historyPage({ convId });
    expect(theirs.firstSeq).toBe(1);
    expect(theirs.messages.map((m) => m.text)).toEqual(["m1", "m2", "m3"]);
    const peerEntry = await listed(peer, convId);
    expect(peerEntry?.firstSeq).toBeUndefined();
    expect(peerEntry?.lastMessage?.text).toBe("m3");

    // A device that last saw seq 1 gets the next push without looping on the cleared seqs: its
    // gap fill asks history after seq 1, which starts after the cleared seq 3.
    const web = await online(user, { device: DeviceKind.WEB, seen: new Map([[convId, 1]]) });
    const four = await peer.client.sendText(desk.uid, "m4");
    await until("the web device has m4", () => web.of(convId).length === 1);
    expect(web.of(convId).map((m) => m.seq)).toEqual([four.seq]);
    expect((await web.client.history({ convId })).map((m) => m.text)).toEqual(["m4"]);
    expect(await listed(web, convId)).toMatchObject({ lastSeq: 4, firstSeq: 4, unread: 1 });
  });

  it("clears a group's history for one member only", async () => {
    const { desk, phone, peer } = await threeDevices();
    const group = await peer.client.createGroup("clearing", [desk.uid]);
    await peer.client.sendGroupText(group.groupId, "g1");
    await peer.client.sendGroupText(group.groupId, "g2");
    await until("the desktop has both", () => desk.of(group.convId).length === 2);
    const cleared = await desk.client.clearHistory(group.convId);
    expect((await phone.client.historyPage({ convId: group.convId })).firstSeq).toBe(cleared + 1);
    expect((await phone.client.history({ convId: group.convId })).length).toBe(0);
    expect((await peer.client.history({ convId: group.convId })).map((m) => m.text)).toEqual(["g1", "g2"]);
    expect(await desk.client.conversationSettings(group.convId, { pinned: true })).toEqual({ ...plain, pinned: true });
  });

  it("answers NOT_PARTICIPANT, NOT_GROUP_MEMBER and INVALID_ARGUMENT", async () => {
    const { desk, peer } = await threeDevices();
    const stranger = await online(cluster.take("n2"));
    const convId = convIdForPair(desk.uid, peer.uid);
    await desk.client.sendText(peer.uid, "private");
    expect(await codeOf(stranger.client.conversationSettings(convId, { pinned: true }))).toBe(
      ErrorCode.NOT_PARTICIPANT,
    );
    expect(await codeOf(stranger.client.clearHistory(convId))).toBe(ErrorCode.NOT_PARTICIPANT);
    const group = await desk.client.createGroup("members only", [peer.uid]);
    expect(await codeOf(stranger.client.conversationSettings(group.convId, { muted: true }))).toBe(
      ErrorCode.NOT_GROUP_MEMBER,
    );
    expect(await codeOf(stranger.client.clearHistory(group.convId))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(stranger.client.conversationSettings("", { muted: true }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(stranger.client.clearHistory(""))).toBe(ErrorCode.INVALID_ARGUMENT);
    // Nothing changed for the members.
    expect((await listed(desk, convId))?.settings).toEqual(plain);
    expect((await desk.client.history({ convId })).length).toBe(1);
  });
});

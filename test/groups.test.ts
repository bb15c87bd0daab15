import type { ChatClient, ChatClientOptions } from "@shardchat/sdk";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, Envelope, GroupEventKind, GroupRole, MessageKind } from "../packages/protocol/src/wire.js";
import type { RunningChatNode } from "../src/chat/server.js";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import type { Shards } from "../src/storage/sharded/shards.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";

// Three chat nodes in this process on the sharded MySQL stack (3 instances) and Redis: users
// land on different nodes, groups' conversations on different shards.

/** Short, so the re-push after a timeout happens within the test. */
const PUSH_ACK_TIMEOUT_MS = 400;

let cluster: ChatCluster;
let config: Config;
let shards: Shards;
const nodes = new Map<string, RunningChatNode>();
/** Ids for accounts that never log in (written straight into the users table). */
const uidGen = new Snowflake({ workerId: 9 });

/** What a client got: messages (as emitted), repeats, group events. */
interface Seen {
  client: ChatClient;
  uid: Uid;
  nodeId: string;
  messages: ChatMessage[];
  repeats: ChatMessage[];
  events: { kind: GroupEventKind; uids: string[]; name: string; role: GroupRole }[];
  of(convId: string): ChatMessage[];
}

async function online(user: ClusterUser, options: ChatClientOptions = {}): Promise<Seen> {
  const seen: Seen = {
    client: undefined as unknown as ChatClient,
    uid: user.uid,
    nodeId: user.nodeId,
    messages: [],
    repeats: [],
    events: [],
    of: (convId) => seen.messages.filter((m) => m.convId === convId),
  };
  seen.client = await cluster.connect(user, {
    ...options,
    listen: (client) => {
      client.on("message", (m) => seen.messages.push(m));
      client.on("repeat", (m) => seen.repeats.push(m));
      client.on("groupEvent", (e) =>
        seen.events.push({ kind: e.kind, uids: e.uids, name: e.group?.name ?? "", role: e.role }),
      );
    },
  });
  return seen;
}

/** Deliver calls made so far by all nodes together. */
async function deliverCalls(): Promise<number> {
  let total = 0;
  for (const node of nodes.values()) {
    const metric = await node.metrics.nodeCalls.get();
    total += metric.values.find((v) => v.labels.rpc === "deliver")?.value ?? 0;
  }
  return total;
}

/** `count` users the ring puts on nodeId, taken off the cluster's pool. */
function take(count: number, nodeId: string): ClusterUser[] {
  return Array.from({ length: count }, () => cluster.take(nodeId));
}

beforeAll(async () => {
  cluster = await startChatCluster({
    tag: "g",
    nodeIds: ["n1", "n2", "n3"],
    usersPerNode: 30,
    settings: {
      CHAT_PUSH_ACK_TIMEOUT_MS: PUSH_ACK_TIMEOUT_MS,
      CHAT_USER_MSGS_PER_SECOND: 1000,
      CHAT_CONN_MSGS_PER_SECOND: 1000,
      // These suites are about delivery and roles across nodes: members are added by fiat, as
      // accounts that never log in must be. Consent has its own suite (group-consent.test.ts).
      GROUP_JOIN_CONSENT: "none",
      GROUP_INVITES_PER_DAY: 100_000,
    },
    stores: (sharded) => ({ messages: new ShardedMessageStore(sharded), groups: new ShardedGroupStore(sharded) }),
  });
  ({ config, shards } = cluster);
  for (const [id, node] of cluster.nodes) nodes.set(id, node);
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe("groups across three chat nodes", () => {
  it("delivers a message to a 50-member group over 3 nodes once each, with one Deliver per other node", async () => {
    const members = [...take(17, "n1"), ...take(17, "n2"), ...take(16, "n3")];
    const sessions = await Promise.all(members.map((m) => online(m)));
    const [owner, ...rest] = sessions as [Seen, ...Seen[]];
    const group = await owner.client.createGroup(
      "fifty",
      rest.map((s) => s.uid),
    );
    expect(group.memberCount).toBe(50);
    await until("everyone told of the group", () =>
      rest.every((s) => s.events.some((e) => e.kind === GroupEventKind.CREATED)),
    );

    const before = await deliverCalls();
    const sent = await owner.client.sendGroupText(group.groupId, "hello fifty");
    expect(sent).toMatchObject({ seq: 1, convId: group.convId, duplicate: false });
    await until("49 deliveries", () => rest.every((s) => s.of(group.convId).length === 1));
    for (const s of rest) expect(s.of(group.convId)[0]).toMatchObject({ msgId: sent.msgId, text: "hello fifty" });
    // The sender's node pushes to its own sessions directly; every other node with online
    // members gets exactly one call, whatever its number of members.
    const nodesWithMembers = new Set(rest.map((s) => s.nodeId));
    nodesWithMembers.delete(owner.nodeId);
    expect(nodesWithMembers.size).toBe(2);
    expect((await deliverCalls()) - before).toBe(nodesWithMembers.size);
    expect(owner.of(group.convId)).toEqual([]);
    await Promise.all(sessions.map((s) => s.client.close()));
  });

  it("refuses non-members: post, history and member list answer NOT_GROUP_MEMBER", async () => {
    const [ownerUser, memberUser] = take(2, "n1");
    const [outsiderUser] = take(1, "n2");
    const owner = await online(ownerUser as ClusterUser);
    const outsider = await online(outsiderUser as ClusterUser);
    const group = await owner.client.createGroup("private", [memberUser?.uid as string]);
    await owner.client.sendGroupText(group.groupId, "members only");
    expect(await codeOf(outsider.client.sendGroupText(group.groupId, "let me in"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(outsider.client.history({ convId: group.convId }))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(outsider.client.groupMembers(group.groupId))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(outsider.client.sendGroupText("123", "no such group"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(outsider.client.inviteToGroup(group.groupId, [outsider.uid]))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(owner.client.createGroup("", []))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(owner.client.createGroup("ghosts", [uidGen.next()]))).toBe(ErrorCode.PEER_NOT_FOUND);
    expect((await owner.client.history({ convId: group.convId })).map((m) => m.text)).toEqual(["members only"]);
  });

  it("checks roles for invite, kick, rename, set role and leave, and tells members", async () => {
    const [ownerUser, adminUser, memberUser] = [take(1, "n1")[0], take(1, "n2")[0], take(1, "n3")[0]];
    const [lateUser, otherUser] = take(2, "n2");
    const owner = await online(ownerUser as ClusterUser);
    const admin = await online(adminUser as ClusterUser);
    const member = await online(memberUser as ClusterUser);
    const late = await online(lateUser as ClusterUser);
    const group = await owner.client.createGroup("roles", [admin.uid, member.uid]);
    const id = group.groupId;

    expect(await codeOf(member.client.inviteToGroup(id, [late.uid]))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(admin.client.setGroupRole(id, member.uid, GroupRole.ADMIN))).toBe(
      ErrorCode.GROUP_PERMISSION_DENIED,
    );
    await owner.client.setGroupRole(id, admin.uid, GroupRole.ADMIN);
    expect(await admin.client.inviteToGroup(id, [late.uid, member.uid])).toEqual({ added: [late.uid], invited: [] });
    await until("the invitee is told", () =>
      late.events.some((e) => e.kind === GroupEventKind.MEMBERS_ADDED && e.uids.includes(late.uid)),
    );

    expect(await codeOf(member.client.renameGroup(id, "mine now"))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect((await admin.client.renameGroup(id, "renamed")).name).toBe("renamed");
    await until("members see the new name", () =>
      member.events.some((e) => e.kind === GroupEventKind.RENAMED && e.name === "renamed"),
    );

    expect(await codeOf(member.client.kickFromGroup(id, late.uid))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(admin.client.kickFromGroup(id, owner.uid))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(admin.client.kickFromGroup(id, otherUser?.uid as string))).toBe(ErrorCode.NOT_FOUND);
    await admin.client.kickFromGroup(id, late.uid);
    await until("the kicked member is told", () =>
      late.events.some((e) => e.kind === GroupEventKind.MEMBER_KICKED && e.uids.includes(late.uid)),
    );
    expect(await codeOf(late.client.sendGroupText(id, "still here?"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(late.client.history({ convId: group.convId }))).toBe(ErrorCode.NOT_GROUP_MEMBER);

    expect(await codeOf(owner.client.leaveGroup(id))).toBe(ErrorCode.GROUP_OWNER_CANNOT_LEAVE);
    await member.client.leaveGroup(id);
    expect(await codeOf(member.client.sendGroupText(id, "bye"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect((await member.client.listGroups()).map((g) => g.groupId)).not.toContain(id);
    expect((await admin.client.listGroups()).find((g) => g.groupId === id)).toMatchObject({
      name: "renamed",
      memberCount: 2,
    });
    const roles = (await owner.client.allGroupMembers(id)).map((m) => [m.uid, m.role]);
    expect(roles.sort()).toEqual(
      [
        [owner.uid, GroupRole.OWNER],
        [admin.uid, GroupRole.ADMIN],
      ].sort(),
    );

    // Hand-over: only the owner, only to a member; then the old owner is an admin and may leave.
    expect(await codeOf(admin.client.transferGroup(id, admin.uid))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(owner.client.transferGroup(id, member.uid))).toBe(ErrorCode.NOT_FOUND);
    await owner.client.transferGroup(id, admin.uid);
    await until("the new owner is told", () =>
      admin.events.some(
        (e) => e.kind === GroupEventKind.ROLE_CHANGED && e.uids.includes(admin.uid) && e.role === GroupRole.OWNER,
      ),
    );
    expect((await admin.client.listGroups()).find((g) => g.groupId === id)?.owner).toBe(admin.uid);
    expect(await codeOf(owner.client.setGroupRole(id, admin.uid, GroupRole.MEMBER))).toBe(
      ErrorCode.GROUP_PERMISSION_DENIED,
    );
    await admin.client.setGroupRole(id, owner.uid, GroupRole.MEMBER);
    await owner.client.leaveGroup(id);
    expect((await admin.client.allGroupMembers(id)).map((m) => [m.uid, m.role])).toEqual([
      [admin.uid, GroupRole.OWNER],
    ]);
  });

  it("serves a 2,000-member group: paged members, online members on each node get it, offline ones sync it", async () => {
    const [ownerUser] = take(1, "n1");
    const onlineUsers = [...take(2, "n1"), ...take(2, "n2"), ...take(2, "n3")];
    const offlineUsers = [...take(1, "n1"), ...take(1, "n2"), ...take(1, "n3")];
    // The rest are accounts that never log in: written straight into users on their shards.
    const bulk = Array.from({ length: 2000 - 1 - onlineUsers.length - offlineUsers.length }, () => uidGen.next());
    const byShard = new Map<string, unknown[][]>();
    for (const uid of bulk) {
      const shard = shards.instanceFor(uid).id;
      byShard.set(shard, [...(byShard.get(shard) ?? []), [uid, `b_${uid}`, `b_${uid}@example.test`, "x", 0]]);
    }
    for (const [shard, rows] of byShard) {
      await shards
        .pool(shard)
        .query("INSERT INTO users (uid, name, email, password_hash, created_at) VALUES ?", [rows]);
    }
    const owner = await online(ownerUser as ClusterUser);
    const live = await Promise.all(onlineUsers.map((u) => online(u)));
    const group = await owner.client.createGroup("two thousand", [
      ...live.map((s) => s.uid),
      ...offlineUsers.map((u) => u.uid),
      ...bulk,
    ]);
    expect(group.memberCount).toBe(2000);
    const first = await owner.client.groupMembers(group.groupId);
    expect(first.members).toHaveLength(config.GROUP_MEMBERS_PAGE);
    expect(first.more).toBe(true);
    const all = await owner.client.allGroupMembers(group.groupId);
    expect(new Set(all.map((m) => m.uid)).size).toBe(2000);

    const before = await deliverCalls();
    const sent = await owner.client.sendGroupText(group.groupId, "hello two thousand");
    await until("online members' deliveries", () => live.every((s) => s.of(group.convId).length === 1));
    // n2 and n3 have online members; n1's are pushed locally: 2 calls for 2,000 members.
    expect((await deliverCalls()) - before).toBe(2);

    for (const user of offlineUsers) {
      const later = await online(user);
      const synced = await later.client.syncAll();
      expect(synced.filter((m) => m.convId === group.convId).map((m) => m.msgId)).toEqual([sent.msgId]);
    }
    // Stored once: one row in the group's conversation, on its one shard.
    const [rows] = await shards
      .pool(shards.instanceFor(group.convId).id)
      .query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM messages WHERE conv_id = ?", [group.convId]);
    expect(Number(rows[0]?.n)).toBe(1);
  }, 120_000);
});

describe("delivery guarantees", () => {
  it("stores a resend after a client died before the ack once; the peer sees it once (group and 1:1)", async () => {
    const [senderUser] = take(1, "n1");
    const [peerUser] = take(1, "n2");
    const sender = await online(senderUser as ClusterUser);
    const peer = await online(peerUser as ClusterUser);
    const group = await sender.client.createGroup("resend", [peer.uid]);
    const direct = convIdForPair(sender.uid, peer.uid);

    // The request leaves, the connection dies before its ack can be read.
    sender.client.sendEnvelope(
      Envelope.fromPartial({
        reqId: 999,
        body: {
          $case: "groupSendReq",
          value: { groupId: group.groupId, clientMsgId: "once-g", kind: MessageKind.TEXT, text: "once" },
        },
      }),
    );
    sender.client.sendEnvelope(
      Envelope.fromPartial({
        reqId: 1000,
        body: {
          $case: "sendReq",
          value: { toUid: peer.uid, clientMsgId: "once-d", kind: MessageKind.TEXT, text: "once" },
        },
      }),
    );
    await sender.client.close();

    const again = await online(senderUser as ClusterUser);
    const resentGroup = await again.client.sendGroupText(group.groupId, "once", "once-g");
    const resentDirect = await again.client.sendText(peer.uid, "once", "once-d");
    // A marker behind each: once it is in, anything before it in the conversation is too.
    await again.client.sendGroupText(group.groupId, "marker");
    await again.client.sendText(peer.uid, "marker");
    await until("markers", () => [group.convId, direct].every((c) => peer.of(c).some((m) => m.text === "marker")));
    for (const [convId, resent] of [
      [group.convId, resentGroup],
      [direct, resentDirect],
    ] as const) {
      expect(peer.of(convId).map((m) => m.text)).toEqual(["once", "marker"]);
      expect(peer.of(convId)[0]?.msgId).toBe(resent.msgId);
      const stored = await again.client.history({ convId });
      expect(stored.filter((m) => m.clientMsgId === resent.clientMsgId)).toHaveLength(1);
    }
  });

  it("re-pushes an unacked push after the timeout and on reconnect; the client's view stays exactly-once", async () => {
    const [senderUser] = take(1, "n1");
    const [receiverUser] = take(1, "n3");
    const sender = await online(senderUser as ClusterUser);
    const group = await sender.client.createGroup("acks", [receiverUser?.uid as string]);

    const silent = await online(receiverUser as ClusterUser, { autoAck: false });
    const sent = await sender.client.sendGroupText(group.groupId, "ack me");
    await until("the first push", () => silent.of(group.convId).length === 1);
    await until("a re-push after the ack timeout", () => silent.repeats.some((m) => m.msgId === sent.msgId));
    expect(silent.of(group.convId)).toHaveLength(1);
    const cursors = silent.client.cursors();
    await silent.client.close();

    // The same device back with what it had: the re-push is recognised, acked, not shown again.
    const resumed = await online(receiverUser as ClusterUser, { seen: cursors });
    await until("the re-push at login", () => resumed.repeats.some((m) => m.msgId === sent.msgId));
    expect(resumed.of(group.convId)).toEqual([]);
    await until("the ack to land", async () => (await resumed.client.sync()).messages.length === 0);
    await resumed.client.close();

    // A fresh client was never pushed anything here; it finds nothing pending either.
    const fresh = await online(receiverUser as ClusterUser);
    expect((await fresh.client.sync()).messages).toEqual([]);
  });

  it("a fresh session is re-pushed what the previous one left unacked, without asking", async () => {
    const [senderUser] = take(1, "n2");
    const [receiverUser] = take(1, "n1");
    const sender = await online(senderUser as ClusterUser);
    const group = await sender.client.createGroup("reconnect", [receiverUser?.uid as string]);
    const silent = await online(receiverUser as ClusterUser, { autoAck: false });
    const sent = await sender.client.sendGroupText(group.groupId, "not acked");
    await until("the push", () => silent.of(group.convId).length === 1);
    await silent.client.close();
    const back = await online(receiverUser as ClusterUser);
    await until("the re-push at login", () => back.of(group.convId).some((m) => m.msgId === sent.msgId));
  });

  it("detects a gap in a group and fills it from history before emitting", async () => {
    const [senderUser] = take(1, "n3");
    const [receiverUser] = take(1, "n2");
    const sender = await online(senderUser as ClusterUser);
    const group = await sender.client.createGroup("gaps", [receiverUser?.uid as string]);
    const first = await online(receiverUser as ClusterUser);
    await sender.client.sendGroupText(group.groupId, "m1");
    await until("m1", () => first.of(group.convId).length === 1);
    await until("m1 acked", async () => (await first.client.sync()).messages.length === 0);
    const had = first.client.cursors();
    await first.client.close();

    // m2 is stored and acked by another device while this client holds only m1.
    await sender.client.sendGroupText(group.groupId, "m2");
    const other = await online(receiverUser as ClusterUser);
    await other.client.syncAll();
    await other.client.close();

    const back = await online(receiverUser as ClusterUser, { seen: had });
    await sender.client.sendGroupText(group.groupId, "m3");
    await until("m2 and m3", () => back.of(group.convId).length === 2);
    expect(back.of(group.convId).map((m) => [m.seq, m.text])).toEqual([
      [2, "m2"],
      [3, "m3"],
    ]);
  });

  it("a first push that is not the conversation's first message brings the unacked ones before it", async () => {
    // As when two members post at once and their fan-outs (from two nodes) arrive swapped, or
    // when a client connects without syncing: the first push it sees is seq 2.
    const [senderUser] = take(1, "n1");
    const [receiverUser] = take(1, "n3");
    const sender = await online(senderUser as ClusterUser);
    const group = await sender.client.createGroup("late start", [receiverUser?.uid as string]);
    await sender.client.sendGroupText(group.groupId, "while you were away");
    const receiver = await online(receiverUser as ClusterUser);
    await sender.client.sendGroupText(group.groupId, "now");
    await until("both", () => receiver.of(group.convId).length === 2);
    expect(receiver.of(group.convId).map((m) => [m.seq, m.text])).toEqual([
      [1, "while you were away"],
      [2, "now"],
    ]);
    expect(receiver.repeats).toEqual([]);
  });
});

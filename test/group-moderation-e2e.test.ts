import type { ChatClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChatMessage,
  GroupEventKind,
  type GroupEventPush,
  type GroupJoinApplication,
  GroupRole,
} from "../packages/protocol/src/wire.js";
import { MUTED_FOREVER_MS } from "../src/chat/handlers/group-moderation.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedBlockStore } from "../src/storage/sharded/block-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";

// Group moderation (issue 17) end to end: two chat nodes in this process over three MariaDB
// shards and Redis, members on both nodes: mutes, "only admins post", the announcement,
// dissolving a group (history kept) and join approval, with who may do each.

const MUTE_MAX_SECONDS = 3600;
const ANNOUNCEMENT_MAX = 20;
const JOIN_MESSAGE_MAX = 10;
const JOIN_TTL_SECONDS = 3600;

let cluster: ChatCluster;
let groups: ShardedGroupStore;

interface Seen {
  client: ChatClient;
  uid: Uid;
  messages: ChatMessage[];
  events: GroupEventPush[];
  joinRequests: GroupJoinApplication[];
  /** The group events of one kind this user got for groupId. */
  eventsOf(groupId: string, kind: GroupEventKind): GroupEventPush[];
}

async function online(user: ClusterUser): Promise<Seen> {
  const seen: Seen = {
    client: undefined as unknown as ChatClient,
    uid: user.uid,
    messages: [],
    events: [],
    joinRequests: [],
    eventsOf: (groupId, kind) => seen.events.filter((e) => e.group?.groupId === groupId && e.kind === kind),
  };
  seen.client = await cluster.connect(user, {
    listen: (client) => {
      client.on("message", (m) => seen.messages.push(m));
      client.on("groupEvent", (e) => seen.events.push(e));
      client.on("groupJoinRequest", (a) => seen.joinRequests.push(a));
    },
  });
  return seen;
}

function take(nodeId: string): ClusterUser {
  return cluster.take(nodeId);
}

/** An owner on n1, an admin on n2, and members on both nodes, in a group the owner made. */
async function team(name: string, members = 2) {
  const owner = await online(take("n1"));
  const admin = await online(take("n2"));
  const others = await Promise.all(Array.from({ length: members }, (_, i) => online(take(i % 2 === 0 ? "n1" : "n2"))));
  const group = await owner.client.createGroup(
    name,
    [admin, ...others].map((u) => u.uid),
  );
  await owner.client.setGroupRole(group.groupId, admin.uid, GroupRole.ADMIN);
  return { group, groupId: group.groupId, owner, admin, members: others };
}

beforeAll(async () => {
  cluster = await startChatCluster({
    tag: "gm",
    nodeIds: ["n1", "n2"],
    usersPerNode: 24,
    settings: {
      GROUP_JOIN_CONSENT: "none",
      GROUP_MUTE_MAX_SECONDS: MUTE_MAX_SECONDS,
      GROUP_ANNOUNCEMENT_MAX_CHARS: ANNOUNCEMENT_MAX,
      GROUP_JOIN_MESSAGE_MAX_CHARS: JOIN_MESSAGE_MAX,
      GROUP_JOIN_REQUEST_TTL_SECONDS: JOIN_TTL_SECONDS,
      GROUP_DISSOLVE_HISTORY: "keep",
    },
    stores: (sharded) => {
      groups = new ShardedGroupStore(sharded);
      return {
        messages: new ShardedMessageStore(sharded),
        groups,
        conversations: new ShardedConversationStore(sharded),
        blocks: new ShardedBlockStore(sharded),
      };
    },
  });
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe("group moderation across two chat nodes and three shards", () => {
  it("mutes a member for a while, an admin until unmuted; only a higher role mutes", async () => {
    const { groupId, owner, admin, members } = await team("mutes", 3);
    const [m1, m2, admin2] = members as [Seen, Seen, Seen];
    await owner.client.setGroupRole(groupId, admin2.uid, GroupRole.ADMIN);

    // Who may mute whom: admins and the owner, only a lower role.
    expect(await codeOf(m1.client.muteGroupMember(groupId, m2.uid, 60))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(admin.client.muteGroupMember(groupId, owner.uid, 60))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(admin.client.muteGroupMember(groupId, admin2.uid, 60))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(owner.client.muteGroupMember(groupId, owner.uid, 60))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    // Bad input.
    expect(await codeOf(admin.client.muteGroupMember(groupId, m1.uid, MUTE_MAX_SECONDS + 1))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(await codeOf(admin.client.muteGroupMember("0", m1.uid, 60))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(admin.client.muteGroupMember(groupId, "0", 60))).toBe(ErrorCode.INVALID_ARGUMENT);
    const outsider = await online(take("n2"));
    expect(await codeOf(admin.client.muteGroupMember(groupId, outsider.uid, 60))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(outsider.client.muteGroupMember(groupId, m1.uid, 60))).toBe(ErrorCode.NOT_GROUP_MEMBER);

    // An admin mutes m1 for 2 s: told to every member, refused until it ends.
    const before = Date.now();
    const untilMs = await admin.client.muteGroupMember(groupId, m1.uid, 2);
    expect(untilMs).toBeGreaterThanOrEqual(before + 2000);
    expect(untilMs).toBeLessThan(Date.now() + 2000 + 1);
    await until("members are told of the mute", () =>
      [owner, m1, m2].every((u) => u.eventsOf(groupId, GroupEventKind.MEMBER_MUTED).length === 1),
    );
    expect(m2.eventsOf(groupId, GroupEventKind.MEMBER_MUTED)[0]).toMatchObject({
      actor: admin.uid,
      uids: [m1.uid],
      untilMs: String(untilMs),
    });
    const listed = await owner.client.allGroupMembers(groupId);
    expect(listed.find((m) => m.uid === m1.uid)?.mutedUntilMs).toBe(String(untilMs));
    expect(listed.find((m) => m.uid === m2.uid)?.mutedUntilMs).toBeUndefined();
    expect(await codeOf(m1.client.sendGroupText(groupId, "muted"))).toBe(ErrorCode.GROUP_MUTED);
    expect((await m2.client.sendGroupText(groupId, "m2 is not muted")).seq).toBeGreaterThan(0);
    let posted: number | undefined;
    await until("m1 posts once the mute ended", async () => {
      // Polled slowly: posts count against the sender's message rate.
      await new Promise((r) => setTimeout(r, 250));
      const code = await codeOf(m1.client.sendGroupText(groupId, "back", `back-${m1.uid}`));
      if (code === "resolved") posted = Date.now();
      else expect(code).toBe(ErrorCode.GROUP_MUTED);
      return code === "resolved";
    });
    expect(posted).toBeGreaterThanOrEqual(untilMs);
    expect((await owner.client.allGroupMembers(groupId)).find((m) => m.uid === m1.uid)?.mutedUntilMs).toBeUndefined();

    // The owner mutes an admin until unmuted, then unmutes it.
    expect(await owner.client.muteGroupMember(groupId, admin2.uid, "forever")).toBe(MUTED_FOREVER_MS);
    expect(await codeOf(admin2.client.sendGroupText(groupId, "muted admin"))).toBe(ErrorCode.GROUP_MUTED);
    // A forward is a post too.
    const direct = await admin2.client.sendText(m1.uid, "to forward");
    expect(
      await codeOf(admin2.client.forward({ convId: convIdForPair(admin2.uid, m1.uid), seq: direct.seq }, { groupId })),
    ).toBe(ErrorCode.GROUP_MUTED);
    expect(await owner.client.muteGroupMember(groupId, admin2.uid, 0)).toBe(0);
    await until("the unmute is told", () =>
      m1.eventsOf(groupId, GroupEventKind.MEMBER_MUTED).some((e) => e.uids[0] === admin2.uid && e.untilMs === "0"),
    );
    expect((await admin2.client.sendGroupText(groupId, "unmuted")).seq).toBeGreaterThan(0);
  });

  it("with everyone muted only admins and the owner post", async () => {
    const { groupId, owner, admin, members } = await team("quiet");
    const [m1, m2] = members as [Seen, Seen];
    expect(await codeOf(m1.client.muteGroup(groupId, true))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    await admin.client.muteGroup(groupId, true);
    await until("members are told", () =>
      [owner, m1, m2].every((u) => u.eventsOf(groupId, GroupEventKind.MUTED_ALL).length === 1),
    );
    expect(m2.eventsOf(groupId, GroupEventKind.MUTED_ALL)[0]?.group?.mutedAll).toBe(true);
    expect((await m1.client.listGroups()).find((g) => g.groupId === groupId)?.mutedAll).toBe(true);
    expect(await codeOf(m1.client.sendGroupText(groupId, "member"))).toBe(ErrorCode.GROUP_MUTED);
    expect(await codeOf(m2.client.sendGroupText(groupId, "member"))).toBe(ErrorCode.GROUP_MUTED);
    const fromAdmin = await admin.client.sendGroupText(groupId, "admins only for now");
    await owner.client.sendGroupText(groupId, "the owner too");
    await until("members still get the admins' messages", () => m2.messages.some((m) => m.msgId === fromAdmin.msgId));
    await owner.client.muteGroup(groupId, false);
    await until("members are told it is over", () => m1.eventsOf(groupId, GroupEventKind.MUTED_ALL).length === 2);
    expect(m1.eventsOf(groupId, GroupEventKind.MUTED_ALL)[1]?.group?.mutedAll).toBeUndefined();
    expect((await m1.client.sendGroupText(groupId, "everyone again")).seq).toBeGreaterThan(0);
  });

  it("the announcement is pushed and carried by GroupInfo", async () => {
    const { groupId, owner, admin, members } = await team("news");
    const [m1, m2] = members as [Seen, Seen];
    expect(await codeOf(m1.client.announceInGroup(groupId, "hi"))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(admin.client.announceInGroup(groupId, "x".repeat(ANNOUNCEMENT_MAX + 1)))).toBe(
      ErrorCode.TEXT_TOO_LONG,
    );
    // Characters, not UTF-16 units: 20 emoji fit.
    const text = "📣".repeat(ANNOUNCEMENT_MAX);
    const group = await admin.client.announceInGroup(groupId, text);
    expect(group.announcement).toMatchObject({ text, by: admin.uid });
    await until("members are told", () =>
      [owner, m1, m2].every((u) => u.eventsOf(groupId, GroupEventKind.ANNOUNCEMENT).length === 1),
    );
    expect(m1.eventsOf(groupId, GroupEventKind.ANNOUNCEMENT)[0]?.group?.announcement?.text).toBe(text);
    expect((await m2.client.listGroups()).find((g) => g.groupId === groupId)?.announcement?.text).toBe(text);
    expect((await m2.client.groupMembers(groupId)).group?.announcement).toEqual(group.announcement);
    const removed = await owner.client.announceInGroup(groupId, "");
    expect(removed.announcement).toBeUndefined();
    expect((await m1.client.listGroups()).find((g) => g.groupId === groupId)?.announcement).toBeUndefined();
  });

  it("the owner dissolves a group: members are told, nobody posts, the history stays readable", async () => {
    const { groupId, group, owner, admin, members } = await team("farewell");
    const [m1, m2] = members as [Seen, Seen];
    const last = await m1.client.sendGroupText(groupId, "last words");
    await until("m2 has the last words", () => m2.messages.some((m) => m.msgId === last.msgId));
    expect(await codeOf(admin.client.dissolveGroup(groupId))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(m1.client.dissolveGroup(groupId))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    await owner.client.dissolveGroup(groupId);
    await until("the former members are told", () =>
      [admin, m1, m2].every((u) => u.eventsOf(groupId, GroupEventKind.DISSOLVED).length === 1),
    );
    expect(m2.eventsOf(groupId, GroupEventKind.DISSOLVED)[0]).toMatchObject({
      actor: owner.uid,
      group: { groupId, dissolved: true },
    });
    for (const u of [owner, m1]) {
      expect(await codeOf(u.client.sendGroupText(groupId, "anyone?"))).toBe(ErrorCode.GROUP_DISSOLVED);
    }
    const direct = await m1.client.sendText(m2.uid, "to forward");
    expect(
      await codeOf(m1.client.forward({ convId: convIdForPair(m1.uid, m2.uid), seq: direct.seq }, { groupId })),
    ).toBe(ErrorCode.GROUP_DISSOLVED);
    // Its messages can no longer be changed.
    expect(await codeOf(m2.client.react(group.convId, last.seq, "👋"))).toBe(ErrorCode.GROUP_DISSOLVED);
    expect(await codeOf(m1.client.recall(group.convId, last.seq))).toBe(ErrorCode.GROUP_DISSOLVED);
    // GROUP_DISSOLVE_HISTORY=keep: the history is still there for the former members.
    expect((await m2.client.history({ convId: group.convId })).map((m) => m.text)).toContain("last words");
    expect((await m1.client.listGroups()).map((g) => g.groupId)).not.toContain(groupId);
    expect(await codeOf(owner.client.dissolveGroup(groupId))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(owner.client.inviteToGroup(groupId, [m1.uid]))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    const outsider = await online(take("n1"));
    expect(await codeOf(outsider.client.requestToJoinGroup(groupId))).toBe(ErrorCode.GROUP_DISSOLVED);
  });

  it("join approval: a request reaches the admins, who admit or decline it; requests expire", async () => {
    const { groupId, group, owner, admin, members } = await team("by approval");
    const [m1, m2] = members as [Seen, Seen];
    const asker = await online(take("n2"));
    const declined = await online(take("n1"));

    // Without approval required the group takes no requests: its members invite.
    expect(await codeOf(asker.client.requestToJoinGroup(groupId, "hi"))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(m1.client.setGroupJoinApproval(groupId, true))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    await admin.client.setGroupJoinApproval(groupId, true);
    await until("members are told", () =>
      [owner, m1, m2].every((u) => u.eventsOf(groupId, GroupEventKind.JOIN_APPROVAL).length === 1),
    );
    expect(m1.eventsOf(groupId, GroupEventKind.JOIN_APPROVAL)[0]?.group?.joinApproval).toBe(true);

    // Bad input.
    expect(await codeOf(asker.client.requestToJoinGroup(groupId, "x".repeat(JOIN_MESSAGE_MAX + 1)))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(await codeOf(m1.client.requestToJoinGroup(groupId, "again"))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(asker.client.requestToJoinGroup(new Snowflake({ workerId: 40 }).next()))).toBe(
      ErrorCode.GROUP_NOT_FOUND,
    );
    expect(await codeOf(asker.client.requestToJoinGroup("0"))).toBe(ErrorCode.INVALID_ARGUMENT);

    await asker.client.requestToJoinGroup(groupId, "let me in");
    await declined.client.requestToJoinGroup(groupId, "me too");
    await until("the owner and the admin are told, on their nodes", () =>
      [owner, admin].every((u) => u.joinRequests.filter((a) => a.groupId === groupId).length === 2),
    );
    expect(owner.joinRequests.find((a) => a.user?.uid === asker.uid)).toMatchObject({
      groupId,
      message: "let me in",
      user: { uid: asker.uid, name: expect.stringMatching(/^gm/) },
    });
    expect(m1.joinRequests).toEqual([]);
    expect(await codeOf(m1.client.groupJoinRequests(groupId))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(asker.client.groupJoinRequests(groupId))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect((await admin.client.groupJoinRequests(groupId)).map((a) => a.user?.uid)).toEqual([declined.uid, asker.uid]);

    // An expired request (older than GROUP_JOIN_REQUEST_TTL_SECONDS) is neither listed nor answered.
    const late = await online(take("n1"));
    await groups.requestJoin({
      groupId,
      uid: late.uid,
      message: "",
      createdAt: Date.now() - (JOIN_TTL_SECONDS + 60) * 1000,
    });
    expect((await owner.client.groupJoinRequests(groupId)).map((a) => a.user?.uid)).not.toContain(late.uid);
    expect(await codeOf(owner.client.answerGroupJoin(groupId, late.uid, true))).toBe(ErrorCode.NOT_FOUND);

    expect(await codeOf(m1.client.answerGroupJoin(groupId, asker.uid, true))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    await admin.client.answerGroupJoin(groupId, declined.uid, false);
    expect(await codeOf(admin.client.answerGroupJoin(groupId, declined.uid, true))).toBe(ErrorCode.NOT_FOUND);
    await admin.client.answerGroupJoin(groupId, asker.uid, true);
    await until("the joiner and the members are told", () =>
      [asker, owner, m1, m2].every((u) =>
        u.eventsOf(groupId, GroupEventKind.MEMBERS_ADDED).some((e) => e.uids.includes(asker.uid)),
      ),
    );
    expect((await asker.client.listGroups()).find((g) => g.groupId === groupId)).toMatchObject({
      memberCount: 5,
      joinApproval: true,
    });
    expect(await admin.client.groupJoinRequests(groupId)).toEqual([]);
    const hello = await m2.client.sendGroupText(groupId, "welcome");
    await until("the joiner gets messages", () => asker.messages.some((m) => m.msgId === hello.msgId));
    expect((await asker.client.sendGroupText(groupId, "thanks")).convId).toBe(group.convId);
    expect(await codeOf(declined.client.sendGroupText(groupId, "me?"))).toBe(ErrorCode.NOT_GROUP_MEMBER);

    // Someone its owner blocked cannot ask.
    const blocked = await online(take("n2"));
    await owner.client.block(blocked.uid);
    expect(await codeOf(blocked.client.requestToJoinGroup(groupId, "please"))).toBe(ErrorCode.BLOCKED);
    expect(await admin.client.groupJoinRequests(groupId)).toEqual([]);
  });
});

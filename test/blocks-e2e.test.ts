import type { ChatClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { MysqlFriendStore } from "../src/storage/mysql/friend-store.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedBlockStore } from "../src/storage/sharded/block-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { ShardedReportStore } from "../src/storage/sharded/report-store.js";
import { shardedUidPlacement } from "../src/storage/sharded/uid-placement.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";

// Blocking and reports (issue 17) end to end: two chat nodes in this process over three MariaDB
// shards and Redis, the blocker and the blocked user on different nodes (the block's row on the
// blocker's shard, its mark on the conversation's).

const BLOCKS_MAX = 2;
const REPORTS_PER_DAY = 4;
const REASON_MAX = 40;

let cluster: ChatCluster;
let reports: ShardedReportStore;

/** Every push a client got, by event name. */
interface Online {
  client: ChatClient;
  uid: Uid;
  pushes: { event: string; value: unknown }[];
  of(event: string): unknown[];
}

const EVENTS = [
  "message",
  "typing",
  "friendApplication",
  "friendReply",
  "friendRemoved",
  "presence",
  "groupEvent",
  "groupInvitation",
  "readReceipt",
] as const;

async function online(user: ClusterUser): Promise<Online> {
  const seen: Online = {
    client: undefined as unknown as ChatClient,
    uid: user.uid,
    pushes: [],
    of: (event) => seen.pushes.filter((p) => p.event === event).map((p) => p.value),
  };
  seen.client = await cluster.connect(user, {
    heartbeat: false,
    ackDelayMs: 0,
    listen: (client) => {
      for (const event of EVENTS) client.on(event, (value: unknown) => seen.pushes.push({ event, value }));
    },
  });
  return seen;
}

/** a and b become friends (a applies, b accepts). */
async function befriend(a: Online, b: Online): Promise<void> {
  await a.client.applyFriend(b.uid, "hi");
  await b.client.replyFriend(a.uid, true);
  await until("a hears b accepted", () => a.of("friendReply").length > 0);
}

/** Lets pushes in flight arrive: a round trip on each client, then a moment for the fan-out. */
async function settle(...clients: Online[]): Promise<void> {
  await Promise.all(clients.map((c) => c.client.heartbeat()));
  await new Promise((r) => setTimeout(r, 300));
}

beforeAll(async () => {
  cluster = await startChatCluster({
    tag: "blk",
    nodeIds: ["n1", "n2"],
    usersPerNode: 14,
    settings: {
      BLOCKS_MAX,
      REPORTS_PER_DAY,
      REPORT_REASON_MAX_CHARS: REASON_MAX,
      TYPING_MIN_INTERVAL_MS: 0,
      CHAT_PRESENCE_PUSH: true,
    },
    stores: (sharded) => {
      reports = new ShardedReportStore(sharded);
      return {
        messages: new ShardedMessageStore(sharded),
        groups: new ShardedGroupStore(sharded),
        conversations: new ShardedConversationStore(sharded),
        friends: new MysqlFriendStore(shardedUidPlacement(sharded)),
        blocks: new ShardedBlockStore(sharded),
        reports,
      };
    },
  });
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe("blocking across two chat nodes and three shards", () => {
  it("refuses 1:1 messages both ways, ends the friendship, tells the blocked user nothing; unblock restores sending", async () => {
    const alice = await online(cluster.take("n1"));
    const bob = await online(cluster.take("n2"));
    await befriend(alice, bob);
    const convId = convIdForPair(alice.uid, bob.uid);
    const before = await alice.client.sendText(bob.uid, "before the block");
    await until("bob has it", () => bob.of("message").length === 1);
    const pushesBefore = bob.pushes.length;

    await alice.client.block(bob.uid);
    const [listed] = await alice.client.blockList();
    const bobName = (await cluster.users.byUid(bob.uid))?.name;
    expect(listed).toMatchObject({ user: { uid: bob.uid, name: bobName } });
    expect(Number(listed?.sinceMs)).toBeGreaterThan(0);
    expect(await bob.client.blockList()).toEqual([]);
    expect(await alice.client.friends()).toEqual([]);
    expect(await bob.client.friends()).toEqual([]);

    expect(await codeOf(alice.client.sendText(bob.uid, "from the blocker"))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(bob.client.sendText(alice.uid, "to the blocker"))).toBe(ErrorCode.BLOCKED);
    // A forward to the blocker goes the same way; typing there is refused too.
    expect(await codeOf(bob.client.forward({ convId, seq: before.seq }, { toUid: alice.uid }))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(bob.client.request("typingReq", { convId }, "typingResp"))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(alice.client.request("typingReq", { convId }, "typingResp"))).toBe(ErrorCode.BLOCKED);
    // Reactions and edits are pushed like messages: refused; the history stays for both.
    expect(await codeOf(bob.client.react(convId, before.seq, "👎"))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(alice.client.edit(convId, before.seq, "edited"))).toBe(ErrorCode.BLOCKED);
    expect((await bob.client.history({ convId })).map((m) => m.text)).toEqual(["before the block"]);
    expect((await alice.client.history({ convId })).map((m) => [m.seq, m.text])).toEqual([[1, "before the block"]]);

    await settle(alice, bob);
    // Nothing reached bob: no friend-removed push, no message, no typing.
    expect(bob.pushes.slice(pushesBefore)).toEqual([]);

    await alice.client.unblock(bob.uid);
    expect(await alice.client.blockList()).toEqual([]);
    // Sending works again both ways, at the next seq (the refusals used none); no friendship is restored.
    expect((await bob.client.sendText(alice.uid, "after")).seq).toBe(2);
    expect((await alice.client.sendText(bob.uid, "after too")).seq).toBe(3);
    await until("bob has alice's message", () => bob.of("message").length === 2);
    expect(await alice.client.friends()).toEqual([]);
    // Unblocking again, or someone never blocked, is not an error.
    await alice.client.unblock(bob.uid);
  });

  it("one side's unblock leaves the other's block", async () => {
    const carol = await online(cluster.take("n1"));
    const dave = await online(cluster.take("n2"));
    await carol.client.block(dave.uid);
    await dave.client.block(carol.uid);
    await carol.client.unblock(dave.uid);
    expect(await codeOf(carol.client.sendText(dave.uid, "still blocked by dave"))).toBe(ErrorCode.BLOCKED);
    await dave.client.unblock(carol.uid);
    expect((await carol.client.sendText(dave.uid, "now")).seq).toBe(1);
  });

  it("drops pending friend applications both ways and refuses new ones either way", async () => {
    const erin = await online(cluster.take("n1"));
    const frank = await online(cluster.take("n2"));
    await erin.client.applyFriend(frank.uid, "be my friend");
    expect((await frank.client.friendApplications()).map((a) => a.from?.uid)).toEqual([erin.uid]);
    await frank.client.block(erin.uid);
    expect(await frank.client.friendApplications()).toEqual([]);
    expect(await codeOf(erin.client.applyFriend(frank.uid, "again"))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(frank.client.applyFriend(erin.uid, "me neither"))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(frank.client.replyFriend(erin.uid, true))).toBe(ErrorCode.APPLICATION_NOT_FOUND);
  });

  it("refuses a group create or invite naming someone either side blocked, as a whole", async () => {
    const owner = await online(cluster.take("n1"));
    const friendly = await online(cluster.take("n2"));
    const blocker = await online(cluster.take("n2"));
    const blockedByOwner = await online(cluster.take("n1"));
    await blocker.client.block(owner.uid);
    await owner.client.block(blockedByOwner.uid);
    const pushesBefore = [friendly, blocker, blockedByOwner].map((u) => u.pushes.length);

    const create = owner.client.createGroup("with a blocker", [friendly.uid, blocker.uid]);
    expect(await codeOf(create)).toBe(ErrorCode.BLOCKED);
    expect(await owner.client.listGroups()).toEqual([]);
    const group = await owner.client.createGroup("friendly", [friendly.uid]);
    expect(await codeOf(owner.client.inviteToGroup(group.groupId, [blocker.uid]))).toBe(ErrorCode.BLOCKED);
    expect(await codeOf(owner.client.inviteToGroup(group.groupId, [blockedByOwner.uid]))).toBe(ErrorCode.BLOCKED);
    // The error names nobody, and nobody is invited, even those not blocked.
    const error = await owner.client.inviteToGroup(group.groupId, [blocker.uid]).catch((err: AppError) => err);
    expect((error as AppError).message).not.toContain(blocker.uid);
    await settle(owner, friendly, blocker, blockedByOwner);
    expect(blocker.pushes.slice(pushesBefore[1])).toEqual([]);
    expect(blockedByOwner.pushes.slice(pushesBefore[2])).toEqual([]);
    // Others are invited as before.
    const invited = await owner.client.inviteToGroup(group.groupId, [(await online(cluster.take("n2"))).uid]);
    expect(invited.invited).toHaveLength(1);
  });

  it("stops the blocker's presence pushes to the blocked user (the friendship ended)", async () => {
    const gina = cluster.take("n1");
    const hank = await online(cluster.take("n2"));
    const ivy = await online(cluster.take("n2"));
    // gina is friends with both, logged in once so the friendships can be made.
    const first = await online(gina);
    await befriend(first, hank);
    await befriend(first, ivy);
    await first.client.close();
    await until("hank sees gina go offline", () =>
      hank.of("presence").some((p) => (p as { uid: string; online: boolean }).online === false),
    );

    // Presence reaches hank while they are friends...
    const again = await online(gina);
    await until(
      "hank and ivy see gina online",
      () => hank.of("presence").length === 2 && ivy.of("presence").length === 2,
    );
    await again.client.block(hank.uid);
    await again.client.close();
    // ...and not after the block: ivy, still a friend, is told of gina's leaving and coming back.
    await until("ivy sees gina go offline", () => ivy.of("presence").length === 3);
    await online(gina);
    await until("ivy sees gina online", () => ivy.of("presence").length === 4);
    await settle(hank, ivy);
    expect(hank.of("presence")).toHaveLength(2);
  });

  it("answers bad block requests with their codes", async () => {
    const jack = await online(cluster.take("n1"));
    const others = [cluster.take("n2"), cluster.take("n1"), cluster.take("n2")];
    expect(await codeOf(jack.client.block(jack.uid))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(jack.client.block("0"))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(jack.client.block("18446744073709551615"))).toBe(ErrorCode.PEER_NOT_FOUND);
    expect(await codeOf(jack.client.unblock(jack.uid))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(jack.client.unblock("0"))).toBe(ErrorCode.INVALID_ARGUMENT);
    // At most BLOCKS_MAX; blocking one of them again (a retry) still answers OK.
    for (const other of others.slice(0, BLOCKS_MAX)) await jack.client.block(other.uid);
    expect(await codeOf(jack.client.block((others[BLOCKS_MAX] as ClusterUser).uid))).toBe(ErrorCode.FRIEND_LIMIT);
    await jack.client.block((others[0] as ClusterUser).uid);
    expect((await jack.client.blockList()).map((b) => b.user?.uid).sort()).toEqual(
      others
        .slice(0, BLOCKS_MAX)
        .map((o) => o.uid)
        .sort(),
    );
  });
});

describe("reports", () => {
  it("reports a message with its sender and content as it was, and a user", async () => {
    const kate = await online(cluster.take("n1"));
    const liam = await online(cluster.take("n2"));
    const sent = await kate.client.sendText(liam.uid, "something rude");
    const convId = convIdForPair(kate.uid, liam.uid);
    const messageReport = await liam.client.report({ convId, seq: sent.seq }, "  insults  ");
    // The content changes afterwards; the report keeps what it was.
    await kate.client.edit(convId, sent.seq, "something nice");
    const userReport = await kate.client.report({ uid: liam.uid }, "spam account");
    const stored = await reports.recent(0, 100);
    expect(stored.find((r) => r.reportId === messageReport)).toMatchObject({
      reporter: liam.uid,
      uid: kate.uid,
      convId,
      seq: sent.seq,
      snapshot: "something rude",
      reason: "insults",
    });
    expect(stored.find((r) => r.reportId === userReport)).toMatchObject({
      reporter: kate.uid,
      uid: liam.uid,
      convId: "",
      seq: 0,
      snapshot: "",
      reason: "spam account",
    });
    // Nobody was told.
    await settle(kate, liam);
    expect(kate.pushes.filter((p) => p.event !== "message" && p.event !== "readReceipt")).toEqual([]);
  });

  it("reports a group message (a member only)", async () => {
    const owner = await online(cluster.take("n1"));
    const member = await online(cluster.take("n2"));
    const outsider = await online(cluster.take("n2"));
    const group = await owner.client.createGroup("reported", []);
    await owner.client.inviteToGroup(group.groupId, [member.uid]);
    await member.client.answerGroupInvitation(group.groupId, true);
    const post = await owner.client.sendGroupText(group.groupId, "group spam");
    const id = await member.client.report({ convId: group.convId, seq: post.seq }, "spam");
    expect((await reports.recent(0, 100)).find((r) => r.reportId === id)).toMatchObject({
      uid: owner.uid,
      snapshot: "group spam",
    });
    expect(await codeOf(outsider.client.report({ convId: group.convId, seq: post.seq }, "spam"))).toBe(
      ErrorCode.NOT_PARTICIPANT,
    );
  });

  it("answers bad reports with their codes, and at most REPORTS_PER_DAY a day", async () => {
    const mia = await online(cluster.take("n1"));
    const noah = await online(cluster.take("n2"));
    const stranger = await online(cluster.take("n1"));
    const sent = await noah.client.sendText(mia.uid, "hello");
    const convId = convIdForPair(mia.uid, noah.uid);
    const report = (target: Parameters<ChatClient["report"]>[0], reason = "spam") => mia.client.report(target, reason);
    expect(await codeOf(report({ uid: "18446744073709551615" }))).toBe(ErrorCode.PEER_NOT_FOUND);
    expect(await codeOf(report({ uid: mia.uid }))).toBe(ErrorCode.INVALID_ARGUMENT);
    // Neither a user (uid 0 is nobody) nor a message.
    expect(await codeOf(report({ uid: "0" }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(report({ convId, seq: 99 }))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(report({ convId, seq: 0 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(stranger.client.report({ convId, seq: sent.seq }, "spam"))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(report({ convId, seq: sent.seq }, "   "))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(report({ convId, seq: sent.seq }, "x".repeat(REASON_MAX + 1)))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    // One's own message is not reported.
    const mine = await mia.client.sendText(noah.uid, "mine");
    expect(await codeOf(report({ convId, seq: mine.seq }))).toBe(ErrorCode.INVALID_ARGUMENT);
    // None of the refusals counted: REPORTS_PER_DAY go through, the next is refused.
    for (let i = 0; i < REPORTS_PER_DAY; i++) await report({ uid: noah.uid }, "x".repeat(REASON_MAX));
    expect(await codeOf(report({ uid: noah.uid }))).toBe(ErrorCode.RATE_LIMITED);
  });
});

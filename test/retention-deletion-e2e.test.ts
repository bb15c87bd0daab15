import type { ChatClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, GroupRole } from "../packages/protocol/src/wire.js";
import { AccountDeletionWorker } from "../src/account/account-deletion-worker.js";
import { DeletedAccountCleanup } from "../src/account/clean-up-deleted-account.js";
import { AccountDeletionRequest } from "../src/account/request-deletion.js";
import { ErrorCode, okOrThrow } from "../src/errors.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { MysqlFriendStore } from "../src/storage/mysql/friend-store.js";
import { RetentionPurger } from "../src/storage/retention/purger.js";
import { ShardedAccountDeletionStore } from "../src/storage/sharded/account-deletion-store.js";
import { ShardedBlockStore } from "../src/storage/sharded/block-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { ShardedRetentionStore, ShardedSentMessageEraser } from "../src/storage/sharded/retention-store.js";
import { shardedUidPlacement } from "../src/storage/sharded/uid-placement.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";

// Retention and account deletion (issue 17) end to end: two chat nodes in this process over
// three MariaDB shards and Redis, the purge and the deletion worker run as a chat process runs
// them, users on both nodes.

const TTL_SECONDS = 2;

let cluster: ChatCluster;
let purger: RetentionPurger;
let deletions: AccountDeletionRequest;
let worker: AccountDeletionWorker;
let groups: ShardedGroupStore;

/** A logged-in client that records the messages pushed to it. */
async function online(user: ClusterUser): Promise<{ client: ChatClient; messages: ChatMessage[] }> {
  const seen = { client: undefined as unknown as ChatClient, messages: [] as ChatMessage[] };
  seen.client = await cluster.connect(user, {
    listen: (client) => client.on("message", (m) => seen.messages.push(m)),
  });
  return seen;
}

beforeAll(async () => {
  const log = createLogger("retention-deletion-test", "warn");
  cluster = await startChatCluster({
    tag: "rd",
    nodeIds: ["n1", "n2"],
    usersPerNode: 6,
    settings: {
      GROUP_JOIN_CONSENT: "none",
      MESSAGE_TTL_SECONDS: TTL_SECONDS,
      ACCOUNT_DELETE_MESSAGES: "erase",
    },
    stores: (shards) => {
      groups = new ShardedGroupStore(shards);
      const friends = new MysqlFriendStore(shardedUidPlacement(shards));
      const blocks = new ShardedBlockStore(shards);
      const accountDeletions = new ShardedAccountDeletionStore(shards);
      purger = new RetentionPurger({
        store: new ShardedRetentionStore(shards, 5),
        settings: {
          MESSAGE_TTL_SECONDS: TTL_SECONDS,
          RETENTION_PURGE_INTERVAL_MS: 60_000,
          RETENTION_PURGE_BATCH: 2,
          RETENTION_PURGE_CONVERSATIONS_PAGE: 10,
        },
        log,
      });
      worker = new AccountDeletionWorker({
        store: accountDeletions,
        cleanup: new DeletedAccountCleanup({
          friends,
          groups,
          eraser: new ShardedSentMessageEraser(shards, 5),
          blocks,
          settings: { ACCOUNT_DELETE_BATCH: 100, GROUP_DISSOLVE_HISTORY: "keep", GROUP_MEMBERS_PAGE: 500 },
          log,
        }),
        settings: { ACCOUNT_DELETION_POLL_MS: 60_000 },
        log,
        forget: (uid) => {
          for (const node of cluster.nodes.values()) node.forgetUser(uid);
        },
      });
      return {
        messages: new ShardedMessageStore(shards),
        groups,
        conversations: new ShardedConversationStore(shards),
        friends,
        blocks,
      };
    },
  });
  deletions = new AccountDeletionRequest({
    async revokeSessions(uid) {
      okOrThrow(await cluster.status.api.revokeTokens({ uid, token: "", all: true }));
    },
    deletions: new ShardedAccountDeletionStore(cluster.shards),
    users: cluster.users,
    settings: { ACCOUNT_DELETE_MESSAGES: "erase" },
    log,
  });
}, 300_000);

afterAll(async () => {
  await cluster?.close();
});

describe("retention and account deletion across two chat nodes and three shards", () => {
  it("the purge removes expired messages; both sides' history and list start after them, and chat goes on", async () => {
    const [aliceUser, bobUser] = [cluster.take("n1"), cluster.take("n2")];
    const alice = await online(aliceUser);
    const bob = await online(bobUser);
    const convId = convIdForPair(aliceUser.uid, bobUser.uid);
    for (const text of ["one", "two", "three"]) await alice.client.sendText(bobUser.uid, text);
    await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000 + 500));
    const fresh = await alice.client.sendText(bobUser.uid, "four");
    const reports = await purger.runOnce();
    expect(reports.reduce((n, r) => n + r.rows, 0)).toBeGreaterThanOrEqual(3);

    for (const side of [alice, bob]) {
      const page = await side.client.historyPage({ convId });
      expect(page.firstSeq).toBe(fresh.seq);
      expect(page.messages.map((m) => m.text)).toEqual(["four"]);
      const listed = (await side.client.conversations()).find((c) => c.convId === convId);
      expect(listed?.firstSeq).toBe(fresh.seq);
    }
    // Chat goes on after the purge, across the nodes, without a gap the client cannot fill.
    const five = await bob.client.sendText(alice.client.uid, "five");
    await until("alice gets five", () => alice.messages.some((m) => m.seq === five.seq));
  });

  it("a deleted account's sessions end at once; the worker ends its friendships and groups and erases its messages", async () => {
    const carolUser = cluster.take("n1");
    const carol = await online(carolUser);
    const dave = await online(cluster.take("n2"));
    const erin = await online(cluster.take("n1"));
    await carol.client.applyFriend(dave.client.uid, "hi");
    await until("dave has the application", async () => (await dave.client.friendApplications()).length === 1);
    await dave.client.replyFriend(carol.client.uid, true);
    const group = await carol.client.createGroup("carol's", [dave.client.uid, erin.client.uid]);
    await carol.client.setGroupRole(group.groupId, erin.client.uid, GroupRole.ADMIN);
    const said = await carol.client.sendText(dave.client.uid, "remember me");
    await carol.client.sendGroupText(group.groupId, "to the group");

    await deletions.request(carolUser.uid);
    // Her tokens are gone (the kick of live sessions that comes with it is status's, tested
    // through the processes in account-delete.test.ts), and so is the profile.
    expect(await codeOf(cluster.connect(carolUser))).toBe(ErrorCode.TOKEN_INVALID);
    expect(await cluster.users.byUid(carolUser.uid)).toBeNull();

    const [report] = (await worker.runOnce()).filter((r) => r.done > 0);
    expect(report?.done).toBe(1);
    expect((await dave.client.friends()).map((f) => f.user?.uid)).not.toContain(carolUser.uid);
    // The group passes to its admin; carol is no member.
    expect((await groups.get(group.groupId))?.owner).toBe(erin.client.uid);
    expect(await groups.roleOf(group.groupId, carolUser.uid)).toBeNull();
    // Her messages are erased, in their places (recalled placeholders).
    const [direct] = await dave.client.history({ convId: said.convId, limit: 10 });
    expect(direct).toMatchObject({ seq: said.seq, text: "", recalled: true });
    const posts = await erin.client.history({ convId: group.convId, limit: 10 });
    expect(posts.every((m) => m.sender !== carolUser.uid || (m.text === "" && m.recalled))).toBe(true);
  });
});

import type { ChatClient } from "@shardchat/sdk";
import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { createLogger } from "../src/log/logger.js";
import { RedisJobLocks } from "../src/routing/redis/job-locks.js";
import { MysqlFriendStore } from "../src/storage/mysql/friend-store.js";
import { MysqlWebhookOutboxStore } from "../src/storage/mysql/webhook-outbox-store.js";
import { shardedKeyPlacement } from "../src/storage/sharded/block-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { shardedUidPlacement } from "../src/storage/sharded/uid-placement.js";
import { WebhookDispatcher } from "../src/webhooks/dispatcher.js";
import { parseEndpoints } from "../src/webhooks/endpoints.js";
import { HttpWebhookSender } from "../src/webhooks/sender.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { configEnv } from "./helpers/env.js";
import { type ServiceProcess, spawnService, waitFor } from "./helpers/processes.js";
import { codeOf, until } from "./helpers/waits.js";
import { eventOf, type ReceivedCall, startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

// Webhooks (issue 18) end to end: two chat nodes in this process over three MariaDB shards and
// Redis, a local HTTP receiver for every event and the before-send hook, and the dispatchers as
// chat node processes run them (one per process, a lease per shard in Redis). A dispatcher
// process is killed with SIGKILL mid-run, and a chat node is closed without draining while
// messages flow: every stored message's event still arrives.

const SECRET = "whsec_c2hhcmRjaGF0LWUyZS13ZWJob29rcw==";
const log = createLogger("webhooks-e2e", "warn");

let receiver: WebhookReceiver;
let cluster: ChatCluster;
/** The dispatcher of "this process". */
let dispatcher: WebhookDispatcher;
let sender: HttpWebhookSender;
let settings: Config;

function startDispatcher(): WebhookDispatcher {
  const d = new WebhookDispatcher({
    outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(cluster.shards)),
    endpoints: parseEndpoints(settings.WEBHOOK_ENDPOINTS),
    sender,
    settings,
    locks: new RedisJobLocks(cluster.redis, settings.REDIS_KEY_PREFIX),
    log,
  });
  d.start();
  return d;
}

/** The before-send hook's policy, by the text: reject…, rewrite:…, slow…; anything else allowed. */
function beforeSend(call: ReceivedCall) {
  const text = String(eventOf(call).data.text);
  if (text.startsWith("reject"))
    return { status: 200, body: JSON.stringify({ action: "reject", code: 7, message: "not here" }) };
  if (text.startsWith("rewrite:"))
    return { status: 200, body: JSON.stringify({ action: "rewrite", text: text.slice(8).toUpperCase() }) };
  if (text.startsWith("slow")) return { status: 200, body: '{"action":"allow"}', delayMs: 1500 };
  return { status: 200, body: '{"action":"allow"}' };
}

let failAfterSend: (call: ReceivedCall) => boolean = () => false;
let answerDelayMs = 0;

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
  receiver.answer = (call) => {
    if (call.path === "/before") return beforeSend(call);
    if (failAfterSend(call)) return { status: 500 };
    return { status: 200, delayMs: answerDelayMs };
  };
  cluster = await startChatCluster({
    tag: "whk",
    nodeIds: ["n1", "n2"],
    usersPerNode: 9,
    settings: {
      WEBHOOK_ENDPOINTS: `message.after_send,message.offline,user.*,friend.*,group.*=${receiver.url()}`,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_BEFORE_SEND_URL: receiver.url("/before"),
      WEBHOOK_BEFORE_SEND_TIMEOUT_MS: 500,
      WEBHOOK_BEFORE_SEND_FAIL_OPEN: false,
      WEBHOOK_POLL_MS: 50,
      WEBHOOK_LEASE_MS: 1500,
      WEBHOOK_RETRY_BASE_MS: 50,
      WEBHOOK_RETRY_MAX_MS: 400,
      WEBHOOK_TIMEOUT_MS: 2000,
      // Invitees join at once: the group tests post as members without an accept round.
      GROUP_JOIN_CONSENT: "none",
      // Messages as fast as the tests send them.
      CHAT_CONN_MSGS_PER_SECOND: 100_000,
      CHAT_USER_MSGS_PER_SECOND: 100_000,
    },
    stores: (shards) => ({
      // As compose builds them with an after-send endpoint configured.
      messages: new ShardedMessageStore(shards, { batchMax: 16, batchConcurrency: 1, afterSendOutbox: true }),
      groups: new ShardedGroupStore(shards, { afterSendOutbox: true }),
      friends: new MysqlFriendStore(shardedUidPlacement(shards)),
      conversations: new ShardedConversationStore(shards),
      outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(shards)),
    }),
  });
  settings = cluster.config;
  sender = new HttpWebhookSender(SECRET);
  dispatcher = startDispatcher();
}, 300_000);

afterAll(async () => {
  await dispatcher?.stop();
  await sender?.close();
  await cluster?.close();
  await receiver?.close();
});

/** The after-send events received for convIds, first arrivals only (a receiver drops repeats by id). */
function afterSends(convIds: Set<string>): { convId: string; seq: number; text: string; id: string }[] {
  return receiver
    .firsts()
    .filter((c) => c.path === "/hook")
    .map(eventOf)
    .filter((e) => e.type === "message.after_send" && convIds.has(String(e.data.convId)))
    .map((e) => ({ convId: String(e.data.convId), seq: Number(e.data.seq), text: String(e.data.text), id: e.id }));
}

/**
 * What the shards hold for convIds: conv → seq → text as sent (undefined for a change's event, whose
 * row keeps none, and for a message changed since: an event tells what it was when stored).
 */
async function stored(convIds: Set<string>): Promise<Map<string, Map<number, string | undefined>>> {
  const out = new Map<string, Map<number, string | undefined>>();
  for (const instance of cluster.shards.map.instances) {
    const [rows] = await cluster.shards.pool(instance.id).query<RowDataPacket[]>(
      // Everything stored there (a recall's, an edit's or a reaction's event is an after-send event too).
      "SELECT conv_id, seq, kind, body, edit_count, recalled FROM messages WHERE conv_id IN (?)",
      [[...convIds]],
    );
    for (const r of rows) {
      const conv = out.get(r.conv_id) ?? new Map<number, string | undefined>();
      const asSent = Number(r.kind) < 50 && Number(r.edit_count) === 0 && Number(r.recalled) === 0;
      conv.set(Number(r.seq), asSent ? String(r.body) : undefined);
      out.set(r.conv_id, conv);
    }
  }
  return out;
}

/** Every stored message of convIds has arrived exactly once (first arrivals), with its text, in seq order per conversation. */
async function expectAllArrived(convIds: Set<string>): Promise<number> {
  const want = await stored(convIds);
  const total = [...want.values()].reduce((n, m) => n + m.size, 0);
  await until(
    `${total} after-send events`,
    () => afterSends(convIds).length >= total,
    () => `got ${afterSends(convIds).length}`,
  );
  const got = afterSends(convIds);
  expect(got.length).toBe(total);
  for (const [convId, seqs] of want) {
    const mine = got.filter((e) => e.convId === convId);
    expect(mine.map((e) => e.seq)).toEqual([...seqs.keys()].sort((a, b) => a - b));
    const content = mine.filter((e) => seqs.get(e.seq) !== undefined);
    expect(content.map((e) => e.text)).toEqual(content.map((e) => seqs.get(e.seq)));
    expect(mine.map((e) => e.id)).toEqual(mine.map((e) => `msg_${convId}_${e.seq}`));
  }
  return total;
}

async function online(user: ClusterUser): Promise<ChatClient> {
  return cluster.connect(user, { heartbeat: false, ackDelayMs: 0 });
}

describe("webhooks across two chat nodes and three shards", () => {
  it("sends an after-send event for every stored message, verified, once per id, in order per conversation", async () => {
    const users = [cluster.take("n1"), cluster.take("n1"), cluster.take("n2"), cluster.take("n2")];
    const clients = await Promise.all(users.map(online));
    const convIds = new Set<string>();
    // Every user writes to every other, in parallel: 1:1 conversations on all three shards.
    await Promise.all(
      clients.map(async (client, i) => {
        for (let n = 0; n < 8; n++) {
          for (const [j, to] of users.entries()) {
            if (j === i) continue;
            const ack = await client.sendText(to.uid, `m ${i}->${j} #${n}`);
            convIds.add(ack.convId);
          }
        }
      }),
    );
    // Changes are stored as events with the conversation's next seq: after-send events too.
    const first = await clients[0]?.sendText(users[1]?.uid ?? "", "to be edited");
    if (!first) throw new Error("no ack");
    await clients[0]?.edit(first.convId, first.seq, "edited");
    await clients[0]?.react(first.convId, first.seq, "👍");
    await clients[0]?.recall(first.convId, first.seq);
    const group = await clients[0]?.createGroup("hooked", [users[1]?.uid ?? "", users[2]?.uid ?? ""]);
    if (!group) throw new Error("no group");
    for (const [i, client] of clients.slice(0, 3).entries()) await client.sendGroupText(group.groupId, `g${i}`);
    convIds.add(group.convId);
    // More groups until the conversations are on all three shards.
    const shardsOf = () => new Set([...convIds].map((c) => cluster.shards.instanceFor(c).id));
    let extra = 0;
    for (; shardsOf().size < 3 && extra < 20; extra++) {
      const more = await clients[3]?.createGroup(`more ${extra}`, [users[0]?.uid ?? ""]);
      if (!more) throw new Error("no group");
      await clients[3]?.sendGroupText(more.groupId, `x${extra}`);
      convIds.add(more.convId);
    }
    expect(shardsOf().size).toBe(3);
    const total = await expectAllArrived(convIds);
    expect(total).toBe(4 * 3 * 8 + 4 + 3 + extra);
    const changes = afterSends(new Set([first.convId])).filter((e) => e.seq > first.seq);
    expect(changes.slice(0, 3).map((e) => e.text)).toEqual(["edited", "", ""]);
    // Every call verified with the README's example code, its timestamp within the tolerance.
    const mine = receiver.calls.filter((c) => c.path === "/hook");
    expect(mine.every((c) => c.verified)).toBe(true);
    expect(
      mine.every(
        (c) =>
          Math.abs(Number(c.headers["webhook-timestamp"]) * 1000 - c.atMs) <
          settings.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS * 1000,
      ),
    ).toBe(true);
    // The group's event carries the group.
    const groupEvents = mine
      .map(eventOf)
      .filter((e) => e.data.convId === group.convId && e.type === "message.after_send");
    expect(groupEvents[0]?.data).toMatchObject({ groupId: group.groupId, text: "g0", kind: "text" });
  });

  it("retries a failing endpoint, the conversation's later events waiting, still in order", async () => {
    const [a, b] = [cluster.take("n1"), cluster.take("n2")];
    const [ca] = await Promise.all([online(a), online(b)]);
    let failures = 0;
    failAfterSend = (call) => {
      const e = eventOf(call);
      if (e.type === "message.after_send" && e.data.text === "r0" && failures < 3) {
        failures++;
        return true;
      }
      return false;
    };
    try {
      const convIds = new Set<string>();
      for (let n = 0; n < 5; n++) convIds.add((await ca?.sendText(b.uid, `r${n}`))?.convId ?? "");
      await expectAllArrived(convIds);
      expect(failures).toBe(3);
      const attempts = receiver.calls.filter(
        (c) =>
          c.path === "/hook" && eventOf(c).type === "message.after_send" && eventOf(c).data.convId === [...convIds][0],
      );
      // Three failed attempts of r0, then r0..r4 in order: nothing overtook the failing event.
      expect(attempts.map((c) => eventOf(c).data.text)).toEqual(["r0", "r0", "r0", "r0", "r1", "r2", "r3", "r4"]);
    } finally {
      failAfterSend = () => false;
    }
  });

  it("lets the before-send hook refuse (code seen, nothing stored), rewrite the stored text, and fails closed on a timeout", async () => {
    const [a, b] = [cluster.take("n1"), cluster.take("n2")];
    const [ca, cb] = await Promise.all([online(a), online(b)]);
    const received: string[] = [];
    cb.on("message", (m) => received.push(m.text));
    const refused = await ca.sendText(b.uid, "reject this").then(
      () => undefined,
      (err: { code: ErrorCode; message: string }) => err,
    );
    expect(refused).toMatchObject({ code: ErrorCode.MESSAGE_REJECTED, message: "7: not here" });
    const rewritten = await ca.sendText(b.uid, "rewrite:quiet please");
    expect(await codeOf(ca.sendText(b.uid, "slow to check"))).toBe(ErrorCode.UNAVAILABLE);
    const kept = await ca.sendText(b.uid, "plain");
    const convIds = new Set([rewritten.convId]);
    // Only the rewrite and the plain one are stored; the rewrite as the hook said.
    const held = await stored(convIds);
    expect([...(held.get(rewritten.convId)?.entries() ?? [])]).toEqual([
      [1, "QUIET PLEASE"],
      [2, "plain"],
    ]);
    expect(kept.seq).toBe(2);
    await until("b got both", () => received.length === 2);
    expect(received).toEqual(["QUIET PLEASE", "plain"]);
    await expectAllArrived(convIds);
    expect(afterSends(convIds).map((e) => e.text)).toEqual(["QUIET PLEASE", "plain"]);
    // The hook was asked with the sender's text, signed.
    const asked = receiver.calls.filter((c) => c.path === "/before" && String(eventOf(c).data.sender) === a.uid);
    expect(asked.map((c) => eventOf(c).data.text)).toEqual([
      "reject this",
      "rewrite:quiet please",
      "slow to check",
      "plain",
    ]);
    expect(asked.every((c) => c.verified)).toBe(true);
  });

  it("records presence, friend, group and offline-recipient events", async () => {
    const [a, b, c] = [cluster.take("n1"), cluster.take("n2"), cluster.take("n2")];
    const ca = await online(a);
    const cb = await online(b);
    await ca.applyFriend(b.uid, "hi there");
    await cb.replyFriend(a.uid, true);
    const group = await ca.createGroup("events", [b.uid]);
    await ca.renameGroup(group.groupId, "events 2");
    // c never logs in: the message finds it offline.
    const toC = await ca.sendText(c.uid, "are you there");
    await cb.close();
    const events = () => receiver.calls.filter((x) => x.path === "/hook").map(eventOf);
    const has = (type: string, match: (d: Record<string, unknown>) => boolean) =>
      events().some((e) => e.type === type && match(e.data));
    await until("the events", () =>
      [
        has("user.online", (d) => d.uid === a.uid),
        has("user.online", (d) => d.uid === b.uid),
        has("user.offline", (d) => d.uid === b.uid),
        has("friend.applied", (d) => d.uid === a.uid && d.other === b.uid && d.message === "hi there"),
        has("friend.accepted", (d) => d.uid === b.uid && d.other === a.uid),
        has("group.created", (d) => d.groupId === group.groupId && (d.uids as string[]).includes(b.uid)),
        has("group.renamed", (d) => d.groupId === group.groupId && d.name === "events 2"),
        has("message.offline", (d) => d.convId === toC.convId && (d.recipients as string[]).includes(c.uid)),
      ].every(Boolean),
    );
    const offline = events().find((e) => e.type === "message.offline" && e.data.convId === toC.convId);
    expect(offline?.id).toBe(`offline_${toC.convId}_${toC.seq}`);
    expect(offline?.data).toMatchObject({ seq: toC.seq, sender: a.uid, text: "are you there" });
  });

  it("still sends every stored message's event after the dispatching process is killed and a chat node closes mid-run", async () => {
    // This process's dispatcher steps back; a dispatcher process takes every shard's lease.
    await dispatcher.stop();
    await new Promise((r) => setTimeout(r, settings.WEBHOOK_LEASE_MS + 200));
    let child: ServiceProcess | undefined = spawnService(
      "webhook-dispatcher",
      "test/helpers/webhook-dispatcher-process.ts",
      {
        ...configEnv(settings),
        LOG_LEVEL: "info",
      },
    );
    try {
      const users = [cluster.take("n1"), cluster.take("n1"), cluster.take("n2"), cluster.take("n2")];
      const clients = await Promise.all(users.map(online));
      const first = await clients[0]?.sendText(users[2]?.uid ?? "", "warm-up");
      const convIds = new Set<string>([first?.convId ?? ""]);
      await waitFor("the process dispatches", () => afterSends(convIds).length === 1, 30_000);
      // This process's dispatcher runs again: refused while the process holds the leases.
      dispatcher = startDispatcher();
      // Slow answers: the process has calls in flight when it dies.
      answerDelayMs = 30;
      let sending = true;
      const errors: unknown[] = [];
      const flows = clients.map(async (client, i) => {
        for (let n = 0; sending; n++) {
          const to = users[(i + 1 + (n % 3)) % users.length] as ClusterUser;
          try {
            convIds.add((await client.sendText(to.uid, `k ${i} #${n}`)).convId);
          } catch (err) {
            // The closed node's clients: their connection is gone.
            errors.push(err);
            return;
          }
        }
      });
      await new Promise((r) => setTimeout(r, 700));
      child.child.kill("SIGKILL");
      await child.stop();
      child = undefined;
      // A chat node closes abruptly (no drain) while its users are sending.
      await cluster.nodes.get("n1")?.close();
      await new Promise((r) => setTimeout(r, 500));
      sending = false;
      await Promise.all(flows);
      answerDelayMs = 0;
      const total = await expectAllArrived(convIds);
      expect(total).toBeGreaterThan(20);
      // Repeats (the killed process's calls in flight) came with the same ids: dropped by id above.
      expect(receiver.calls.filter((c) => c.path === "/hook").every((c) => c.verified)).toBe(true);
    } finally {
      answerDelayMs = 0;
      await child?.stop("SIGKILL");
    }
  });
});

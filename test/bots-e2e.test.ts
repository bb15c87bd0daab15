import { AdminClient, GateClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../packages/protocol/src/wire.js";
import { botEmail } from "../src/bots/account.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair, type Uid } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { RedisJobLocks } from "../src/routing/redis/job-locks.js";
import { MysqlWebhookOutboxStore } from "../src/storage/mysql/webhook-outbox-store.js";
import { shardedKeyPlacement } from "../src/storage/sharded/block-store.js";
import { ShardedBotStore } from "../src/storage/sharded/bot-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { afterSendOutboxOn, startWebhookDispatcher } from "../src/webhooks/setup.js";
import { type AdminGate, startAdminGate } from "./helpers/admin-gate.js";
import { type ChatCluster, startChatCluster } from "./helpers/chat-cluster.js";
import { codeOf, until } from "./helpers/waits.js";
import { eventOf, type ReceivedCall, startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

// Bots (issue 18) end to end: gate's Server API listening, two chat nodes in this process over
// three MariaDB shards and Redis, the webhook dispatcher as a chat node process starts it
// (startWebhookDispatcher, a lease per shard in Redis), and each bot's own local HTTP receiver,
// which checks every call with the README's verification code.

const SECRET = "whsec_c2hhcmRjaGF0LWJvdHMtZTJlLXNlY3JldA==";
const CACHE_MS = 150;
const log = createLogger("bots-e2e", "warn");

let receiver: WebhookReceiver;
let cluster: ChatCluster;
let gate: AdminGate;
let gateUrl: string;
let admin: AdminClient;
let stopDispatcher: (() => Promise<void>) | undefined;
/** Paths whose calls the receiver refuses (HTTP 500) while the function says so. */
let failing: (call: ReceivedCall) => boolean = () => false;

/** The bot.message events a path received, first arrivals only (the receiver drops repeats by id). */
function botEvents(path: string) {
  return receiver
    .firsts()
    .filter((c) => c.path === path)
    .map((c) => ({ call: c, event: eventOf(c) }))
    .map(({ call, event }) => ({
      verified: call.verified,
      id: event.id,
      type: event.type,
      bot: String(event.data.bot),
      message: event.data.message as { convId: string; seq: number; sender: string; text: string; kind: string },
    }));
}

/** Lets every cache of the bots (the dispatcher's, the chat nodes') read the bots again. */
const cachesExpire = () => new Promise((r) => setTimeout(r, CACHE_MS * 3));

async function onlineUser(nodeId: string) {
  const user = cluster.take(nodeId);
  const messages: ChatMessage[] = [];
  const client = await cluster.connect(user, {
    heartbeat: false,
    ackDelayMs: 0,
    listen: (c) => c.on("message", (m) => messages.push(m)),
  });
  return { ...user, client, messages };
}

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
  receiver.answer = (call) => (failing(call) ? { status: 500 } : { status: 200 });
  const hooks = {
    // Only the offline notices go to an endpoint: a bot must never be named in one.
    WEBHOOK_ENDPOINTS: `message.offline=${receiver.url("/offline")}`,
    WEBHOOK_SECRET: SECRET,
    BOTS_ENABLED: true,
  };
  // As compose decides it: with bots on, every message's after-send row is written with it.
  const afterSendOutbox = afterSendOutboxOn(hooks);
  cluster = await startChatCluster({
    tag: "bot",
    nodeIds: ["n1", "n2"],
    usersPerNode: 6,
    settings: {
      ...hooks,
      BOTS_CACHE_MS: CACHE_MS,
      WEBHOOK_POLL_MS: 50,
      WEBHOOK_LEASE_MS: 1500,
      WEBHOOK_RETRY_BASE_MS: 50,
      WEBHOOK_RETRY_MAX_MS: 200,
      WEBHOOK_TIMEOUT_MS: 2000,
      CHAT_REQUIRE_FRIENDSHIP: false,
      GROUP_JOIN_CONSENT: "none",
      CHAT_CONN_MSGS_PER_SECOND: 100_000,
      CHAT_USER_MSGS_PER_SECOND: 100_000,
    },
    stores: (shards) => ({
      messages: new ShardedMessageStore(shards, { batchMax: 16, batchConcurrency: 1, afterSendOutbox }),
      groups: new ShardedGroupStore(shards, { afterSendOutbox }),
      conversations: new ShardedConversationStore(shards),
      outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(shards)),
      bots: new ShardedBotStore(shards),
    }),
  });
  const { config, shards, redis } = cluster;
  stopDispatcher = startWebhookDispatcher(config, {
    outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(shards)),
    bots: new ShardedBotStore(shards),
    groups: new ShardedGroupStore(shards),
    locks: new RedisJobLocks(redis, config.REDIS_KEY_PREFIX),
    log,
  });
  gate = await startAdminGate(cluster, log, { workerId: 911, keyName: "bots", bots: true });
  gateUrl = gate.url;
  admin = new AdminClient(gateUrl, gate.apiKey);
}, 300_000);

afterAll(async () => {
  await stopDispatcher?.();
  await gate?.close();
  await cluster?.close();
  await receiver?.close();
});

const name = (tag: string) => `bot_${tag}_${Date.now() % 1e7}`;

describe("bot accounts", () => {
  it("are made, read, changed and listed by the Server API, and never log in (BOT_ACCOUNT)", async () => {
    const botName = name("acct");
    const bot = await admin.createBot({ name: botName, webhookUrl: receiver.url("/acct") });
    expect(bot).toMatchObject({ name: botName, webhookUrl: receiver.url("/acct") });
    expect(await admin.bot(bot.uid)).toEqual(bot);
    expect((await admin.bots()).map((b) => b.uid)).toContain(bot.uid);
    // It is a user like any other for the API (a name others see), without a password.
    expect(await admin.user(bot.uid)).toMatchObject({ uid: bot.uid, name: botName, email: botEmail(bot.uid) });
    const gate = new GateClient(gateUrl);
    for (const login of [botName, botEmail(bot.uid)]) {
      expect(await codeOf(gate.login(login, "any-password-at-all"))).toBe(ErrorCode.BOT_ACCOUNT);
    }
    const res = await fetch(`${gateUrl}/v1/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ user: botName, password: "whatever-it-is" }),
    });
    expect([res.status, ((await res.json()) as { error: number }).error]).toEqual([403, ErrorCode.BOT_ACCOUNT]);

    const changed = await admin.updateBot(bot.uid, { webhookUrl: receiver.url("/acct2") });
    expect(changed.webhookUrl).toBe(receiver.url("/acct2"));
    expect(changed.updatedAt).toBeGreaterThanOrEqual(bot.updatedAt);
    // Taken names, and URLs that are not plain http(s), are refused.
    expect(await codeOf(admin.createBot({ name: botName, webhookUrl: receiver.url() }))).toBe(ErrorCode.USER_EXISTS);
    const badName = name("bad");
    for (const webhookUrl of [
      "ftp://bots.example.test/x",
      "not a url at all",
      "http://user:pw@127.0.0.1/x",
      "https://x.test/#f",
      `https://x.test/${"a".repeat(2048)}`,
    ]) {
      expect(await codeOf(admin.createBot({ name: badName, webhookUrl }))).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(await codeOf(admin.updateBot(bot.uid, { webhookUrl }))).toBe(ErrorCode.INVALID_ARGUMENT);
    }
    // A refused bot leaves no user behind: its name is free.
    expect(await cluster.users.byName(badName)).toBeNull();
    expect((await admin.bot(bot.uid)).webhookUrl).toBe(receiver.url("/acct2"));
    // A user who is no bot, and unknown uids.
    const person = cluster.take("n1");
    expect(await codeOf(admin.bot(person.uid))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(admin.updateBot("123456789", { webhookUrl: receiver.url() }))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(admin.deleteBot("123456789"))).toBe(ErrorCode.NOT_FOUND);

    // Deleted: no bot any more; the account stays, and still never logs in.
    await admin.deleteBot(bot.uid);
    expect(await codeOf(admin.bot(bot.uid))).toBe(ErrorCode.NOT_FOUND);
    expect((await admin.user(bot.uid)).name).toBe(botName);
    expect(await codeOf(gate.login(botName, "any-password-at-all"))).toBe(ErrorCode.BOT_ACCOUNT);
  });
});

describe("the OpenAPI document", () => {
  it("lists the bot routes", async () => {
    const doc = (await (await fetch(`${gateUrl}/admin/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.filter((r) => r.includes("/bots")).sort()).toEqual(
      [
        "POST /admin/v1/bots",
        "GET /admin/v1/bots",
        "GET /admin/v1/bots/{uid}",
        "PATCH /admin/v1/bots/{uid}",
        "DELETE /admin/v1/bots/{uid}",
      ].sort(),
    );
  });
});

describe("delivery to a bot", () => {
  it("a user's messages reach the bot's webhook as signed bot.message events, exactly those sent, in order; its answer reaches the user on the other node", async () => {
    const bot = await admin.createBot({ name: name("echo"), webhookUrl: receiver.url("/echo") });
    await cachesExpire();
    // The user is online on n2; the bot's requests run on whichever node the ring gives it.
    const user = await onlineUser("n2");
    const texts = Array.from({ length: 25 }, (_, i) => `hello bot ${i}`);
    for (const text of texts) await user.client.sendText(bot.uid, text);
    const convId = convIdForPair(user.uid, bot.uid as Uid);
    await until("the bot's 25 events", () => botEvents("/echo").length >= texts.length);
    await new Promise((r) => setTimeout(r, 300));
    const events = botEvents("/echo");
    expect(events.every((e) => e.verified)).toBe(true);
    expect(events.every((e) => e.type === "bot.message" && e.bot === bot.uid)).toBe(true);
    expect(events.map((e) => e.message.text)).toEqual(texts);
    expect(events.map((e) => e.message.seq)).toEqual(texts.map((_, i) => i + 1));
    expect(events.every((e) => e.message.convId === convId && e.message.sender === user.uid)).toBe(true);
    expect(new Set(events.map((e) => e.id)).size).toBe(texts.length);
    expect(events[0]?.id).toBe(`bot_${bot.uid}_${convId}_1`);

    // The bot answers through the Server API; the user gets the push on its node at once.
    const sent = await admin.send({ from: bot.uid, toUid: user.uid, text: "hello human" });
    expect(sent).toMatchObject({ convId, seq: texts.length + 1, duplicate: false });
    await until("the answer's push", () => user.messages.some((m) => m.text === "hello human"));
    expect(user.messages.find((m) => m.text === "hello human")).toMatchObject({ sender: bot.uid, convId });
    // The bot's own message does not come back to it.
    await new Promise((r) => setTimeout(r, 500));
    expect(botEvents("/echo").some((e) => e.message.sender === bot.uid)).toBe(false);
    // A bot is never an offline recipient (it has no session, ever): no offline notice names it.
    const offline = receiver.calls.filter((c) => c.path === "/offline").map(eventOf);
    expect(offline.some((e) => (e.data.recipients as string[]).includes(bot.uid))).toBe(false);
  });

  it("an offline user the bot writes to is still in the offline notices", async () => {
    const bot = await admin.createBot({ name: name("notify"), webhookUrl: receiver.url("/notify") });
    await cachesExpire();
    const away = cluster.take("n1");
    const sent = await admin.send({ from: bot.uid, toUid: away.uid, text: "while you were away" });
    await until("the offline notice", () =>
      receiver.calls
        .filter((c) => c.path === "/offline")
        .map(eventOf)
        .some((e) => e.data.convId === sent.convId && (e.data.recipients as string[]).includes(away.uid)),
    );
  });

  it("in a group, the bot gets every member's post in order, and not its own", async () => {
    const bot = await admin.createBot({ name: name("group"), webhookUrl: receiver.url("/group") });
    const a = await onlineUser("n1");
    const b = await onlineUser("n2");
    const group = await admin.createGroup({ owner: a.uid, name: "with a bot", members: [b.uid, bot.uid] });
    await cachesExpire();
    const posted: string[] = [];
    for (let i = 0; i < 10; i++) {
      const by = i % 2 === 0 ? a : b;
      const text = `post ${i} by ${by.uid}`;
      await by.client.sendGroupText(group.groupId, text);
      posted.push(text);
      if (i === 4) await admin.send({ from: bot.uid, groupId: group.groupId, text: "the bot's own post" });
    }
    await until("the bot's group events", () => botEvents("/group").length >= posted.length);
    // The bot's post went to both members, on both nodes.
    await until("the bot's post to a", () => a.messages.some((m) => m.text === "the bot's own post"));
    await until("the bot's post to b", () => b.messages.some((m) => m.text === "the bot's own post"));
    await new Promise((r) => setTimeout(r, 500));
    const events = botEvents("/group");
    expect(events.every((e) => e.verified && e.bot === bot.uid && e.message.convId === group.convId)).toBe(true);
    expect(events.map((e) => e.message.text)).toEqual(posted);
    const seqs = events.map((e) => e.message.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(events.some((e) => e.message.sender === bot.uid)).toBe(false);
  });

  it("a failing bot endpoint is tried again, with the same ids, and gets every message in order", async () => {
    const bot = await admin.createBot({ name: name("flaky"), webhookUrl: receiver.url("/flaky") });
    await cachesExpire();
    const user = await onlineUser("n1");
    let refused = 0;
    failing = (call) => call.path === "/flaky" && refused++ < 4;
    try {
      const texts = Array.from({ length: 8 }, (_, i) => `flaky ${i}`);
      for (const text of texts) await user.client.sendText(bot.uid, text);
      await until("every flaky event", () => botEvents("/flaky").length >= texts.length);
      await new Promise((r) => setTimeout(r, 300));
      const events = botEvents("/flaky");
      expect(events.map((e) => e.message.text)).toEqual(texts);
      const calls = receiver.calls.filter((c) => c.path === "/flaky");
      expect(refused).toBeGreaterThanOrEqual(4);
      // The first message was refused four times and sent again under its own id; nothing after
      // it arrived before it was taken.
      const firstId = events[0]?.id;
      expect(calls.slice(0, 5).map((c) => c.headers["webhook-id"])).toEqual(Array(5).fill(firstId));
      expect(calls.length).toBe(texts.length + 4);
    } finally {
      failing = () => false;
    }
  });

  it("a changed URL gets what follows; a deleted bot gets nothing more", async () => {
    const bot = await admin.createBot({ name: name("moving"), webhookUrl: receiver.url("/before-move") });
    await cachesExpire();
    const user = await onlineUser("n2");
    await user.client.sendText(bot.uid, "to the old URL");
    await until("the first event", () => botEvents("/before-move").length === 1);
    await admin.updateBot(bot.uid, { webhookUrl: receiver.url("/after-move") });
    await cachesExpire();
    await user.client.sendText(bot.uid, "to the new URL");
    await until("the moved event", () => botEvents("/after-move").length === 1);
    expect(botEvents("/after-move")[0]?.message.text).toBe("to the new URL");
    expect(botEvents("/before-move")).toHaveLength(1);

    await admin.deleteBot(bot.uid);
    await cachesExpire();
    // Still a user one can write to (stored, as to anyone without a session), but no bot: no call.
    await user.client.sendText(bot.uid, "after the delete");
    await new Promise((r) => setTimeout(r, 800));
    expect(botEvents("/after-move")).toHaveLength(1);
    expect(receiver.calls.filter((c) => c.path === "/after-move" || c.path === "/before-move")).toHaveLength(2);
  });
});

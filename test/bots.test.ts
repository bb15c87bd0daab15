import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { checkBotWebhookUrl } from "../src/bots/account.js";
import { CachedBotDirectory } from "../src/bots/directory.js";
import { KnownBots, withoutBots } from "../src/bots/offline-filter.js";
import { loadConfig } from "../src/config/load.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, type Uid, uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import type { BotStore, GroupStore } from "../src/storage/ports.js";
import { SqliteBotStore } from "../src/storage/sqlite/bot-store.js";
import { SqliteGroupStore } from "../src/storage/sqlite/group-store.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { SqliteWebhookOutboxStore } from "../src/storage/sqlite/webhook-outbox-store.js";
import { WebhookDispatcher } from "../src/webhooks/dispatcher.js";
import { parseEndpoints } from "../src/webhooks/endpoints.js";
import { HttpWebhookSender } from "../src/webhooks/sender.js";
import { afterSendOutboxOn, startWebhookDispatcher } from "../src/webhooks/setup.js";
import { textMessage } from "./helpers/messages.js";
import { type TempSqlite, tempSqlite } from "./helpers/sqlite.js";
import { until } from "./helpers/waits.js";
import { eventOf, startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

/**
 * Bots (issue 18) on the embedded stores and a real HTTP receiver on a local port: which bots a
 * message goes to and what that costs in reads (the caches), the dispatcher's bot.message calls
 * beside an endpoint's (signed as the README's example checks, retried per target, in order),
 * the offline filter, the URL rules, and the settings' rules.
 */

const SECRET = "whsec_Ym90cy11bml0LXRlc3Qtc2VjcmV0";
const log = createLogger("bots-test", "silent");
let receiver: WebhookReceiver;
let db: TempSqlite;
let next = 7_610_000_000_000_000_000n;
const id = () => uidOf(next++);

function settings(overrides: Partial<Config> = {}): Config {
  return loadConfig(
    {},
    {
      WEBHOOK_SECRET: SECRET,
      BOTS_ENABLED: true,
      WEBHOOK_RETRY_BASE_MS: 40,
      WEBHOOK_RETRY_MAX_MS: 200,
      WEBHOOK_POLL_MS: 20,
      WEBHOOK_TIMEOUT_MS: 1000,
      ...overrides,
    },
  );
}

/** Counts the reads the directory makes through the real stores. */
function counted(bots: BotStore, groups: GroupStore) {
  const reads = { list: 0, members: 0 };
  return {
    reads,
    bots: {
      list: () => {
        reads.list++;
        return bots.list();
      },
    },
    groups: {
      memberUids: (groupId: string) => {
        reads.members++;
        return groups.memberUids(groupId);
      },
    },
  };
}

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
  db = tempSqlite("sc-bots-");
});
afterAll(async () => {
  await receiver.close();
  db.remove();
});
afterEach(() => {
  receiver.calls.length = 0;
  receiver.answer = () => ({ status: 200 });
});

describe("the bot directory", () => {
  it("answers a conversation's bots but its sender, reading the bots and a group's members once per BOTS_CACHE_MS", async () => {
    const bots = new SqliteBotStore(db.db);
    const groups = new SqliteGroupStore(db.db);
    const [person, botA, botB, other] = [id(), id(), id(), id()];
    const members = Array.from({ length: 2000 }, () => id());
    await bots.create({ uid: botA, webhookUrl: "http://127.0.0.1:9/a", createdAt: 1, updatedAt: 1 });
    await bots.create({ uid: botB, webhookUrl: "http://127.0.0.1:9/b", createdAt: 1, updatedAt: 1 });
    const groupId = String(id());
    await groups.create({ groupId, name: "big", owner: person, members: [...members, botA, botB], maxMembers: 5000 });
    let now = 1_000_000;
    const c = counted(bots, groups);
    const directory = new CachedBotDirectory({ ...c, ttlMs: 1000, now: () => now });

    // 1:1: the id names both users; no member read.
    expect(await directory.of(convIdForPair(person, botA), person)).toEqual([
      { uid: botA, webhookUrl: "http://127.0.0.1:9/a" },
    ]);
    expect(await directory.of(convIdForPair(person, botA), botA)).toEqual([]);
    expect(await directory.of(convIdForPair(person, other), person)).toEqual([]);
    expect(c.reads).toEqual({ list: 1, members: 0 });
    // A 2,000-member group: one member read, then none until the TTL passed, whoever posts.
    const conv = groupConvId(groupId);
    for (let i = 0; i < 50; i++) {
      const sender = i % 3 === 0 ? botA : (members[i] as Uid);
      const got = (await directory.of(conv, sender)).map((t) => t.uid).sort();
      expect(got).toEqual(sender === botA ? [botB] : [botA, botB].sort());
    }
    expect(c.reads).toEqual({ list: 1, members: 1 });
    // Past the TTL, a change counts: a removed bot gets nothing more.
    await bots.remove(botB);
    now += 1000;
    expect((await directory.of(conv, person)).map((t) => t.uid)).toEqual([botA]);
    expect(c.reads).toEqual({ list: 2, members: 2 });
  });

  it("reads no group while there is no bot at all", async () => {
    const empty = tempSqlite("sc-bots-empty-");
    try {
      const c = counted(new SqliteBotStore(empty.db), new SqliteGroupStore(empty.db));
      const directory = new CachedBotDirectory({ ...c, ttlMs: 60_000 });
      for (let i = 0; i < 20; i++) expect(await directory.of(groupConvId(String(id())), id())).toEqual([]);
      expect(c.reads).toEqual({ list: 1, members: 0 });
    } finally {
      empty.remove();
    }
  });
});

describe("bot.message delivery", () => {
  it("sends each message to its conversation's bots beside the endpoints, and retries only the target that failed", async () => {
    const config = settings({ WEBHOOK_ENDPOINTS: `message.after_send=${receiver.url("/endpoint")}` });
    expect(afterSendOutboxOn(config)).toBe(true);
    const messages = new SqliteMessageStore(db.db, { afterSendOutbox: true });
    const groups = new SqliteGroupStore(db.db, { afterSendOutbox: true });
    const bots = new SqliteBotStore(db.db);
    const outbox = new SqliteWebhookOutboxStore(db.db);
    const [alice, bob, good, flaky] = [id(), id(), id(), id()];
    await bots.create({ uid: good, webhookUrl: receiver.url("/good"), createdAt: 1, updatedAt: 1 });
    await bots.create({ uid: flaky, webhookUrl: receiver.url("/flaky"), createdAt: 1, updatedAt: 1 });
    const groupId = String(id());
    await groups.create({ groupId, name: "g", owner: alice, members: [bob, good, flaky], maxMembers: 10 });
    let msgId = 0n;
    const nextMsg = () => String(7_620_000_000_000_000_000n + msgId++) as Uid;
    for (let i = 0; i < 3; i++) {
      await groups.append({
        groupId,
        msgId: nextMsg(),
        sender: i === 1 ? good : alice,
        clientMsgId: `g${i}`,
        kind: MessageKind.TEXT,
        text: `group ${i}`,
        sentAtMs: i,
      });
    }
    for (let i = 0; i < 2; i++) {
      await messages.append(
        textMessage(bob, good, `direct ${i}`, { msgId: nextMsg(), clientMsgId: `d${i}`, sentAtMs: i }),
      );
    }
    // The flaky bot refuses its first three calls.
    let refused = 0;
    receiver.answer = (call) => (call.path === "/flaky" && refused++ < 3 ? { status: 503 } : { status: 200 });
    const sender = new HttpWebhookSender(SECRET);
    const dispatcher = new WebhookDispatcher({
      outbox,
      endpoints: parseEndpoints(config.WEBHOOK_ENDPOINTS),
      bots: new CachedBotDirectory({ bots, groups, ttlMs: 60_000 }),
      sender,
      settings: config,
      log,
    });
    try {
      dispatcher.start();
      const groupConv = groupConvId(groupId);
      const texts = (path: string) =>
        receiver
          .firsts()
          .filter((c) => c.path === path)
          .map(eventOf)
          .map((e) => String((e.data.message as { text: string } | undefined)?.text ?? e.data.text));
      await until("every call", () => texts("/flaky").length === 3 && texts("/endpoint").length === 5);
      expect(receiver.calls.every((c) => c.verified)).toBe(true);
      // The good bot got its 1:1 messages at once, while the group's first row waited for the flaky bot.
      const good = texts("/good");
      expect(good.filter((t) => t.startsWith("direct"))).toEqual(["direct 0", "direct 1"]);
      expect(good.filter((t) => t.startsWith("group"))).toEqual(["group 0", "group 2"]);
      const atOf = (path: string, text: string, nth = 0) =>
        receiver.calls.filter((c) => c.path === path && c.body.includes(`"text":"${text}"`))[nth]?.atMs ?? Infinity;
      expect(atOf("/good", "direct 1")).toBeLessThan(atOf("/flaky", "group 0", 3));
      expect(texts("/flaky")).toEqual(["group 0", "group 1", "group 2"]);
      // The group's first row reached the good bot and the endpoint once: only the flaky bot was asked again.
      const calls = (path: string, text: string) =>
        receiver.calls.filter((c) => c.path === path && c.body.includes(`"text":"${text}"`)).length;
      expect([calls("/good", "group 0"), calls("/endpoint", "group 0"), calls("/flaky", "group 0")]).toEqual([1, 1, 4]);
      const first = eventOf(receiver.calls.find((c) => c.path === "/flaky") as never);
      expect(first).toMatchObject({
        type: "bot.message",
        id: `bot_${flaky}_${groupConv}_1`,
        data: {
          bot: flaky,
          message: { convId: groupConv, seq: 1, sender: alice, groupId, kind: "text", text: "group 0" },
        },
      });
      await until("an empty outbox", async () => (await outbox.scan("sqlite", "", 50)).length === 0);
    } finally {
      await dispatcher.stop();
      await sender.close();
    }
  });

  it("starts with bots alone (no endpoint), and needs WEBHOOK_SECRET", async () => {
    const config = settings();
    expect(afterSendOutboxOn(config)).toBe(true);
    expect(afterSendOutboxOn(settings({ BOTS_ENABLED: false }))).toBe(false);
    expect(() => afterSendOutboxOn({ ...config, WEBHOOK_SECRET: "" })).toThrow(/WEBHOOK_SECRET/);
    const bots = new SqliteBotStore(db.db);
    const groups = new SqliteGroupStore(db.db);
    const messages = new SqliteMessageStore(db.db, { afterSendOutbox: true });
    const [user, bot] = [id(), id()];
    await bots.create({ uid: bot, webhookUrl: receiver.url("/alone"), createdAt: 1, updatedAt: 1 });
    const stop = startWebhookDispatcher(config, { outbox: new SqliteWebhookOutboxStore(db.db), bots, groups, log });
    expect(stop).toBeDefined();
    try {
      await messages.append(textMessage(user, bot, "hi", { msgId: id(), clientMsgId: "a1", sentAtMs: 1 }));
      await until("the bot's call", () => receiver.calls.some((c) => c.path === "/alone"));
    } finally {
      await stop?.();
    }
    expect(
      startWebhookDispatcher(settings({ BOTS_ENABLED: false }), { outbox: new SqliteWebhookOutboxStore(db.db), log }),
    ).toBeUndefined();
  });
});

describe("bots and offline recipients", () => {
  it("the listener never hears of a bot", async () => {
    const bots = new SqliteBotStore(db.db);
    const bot = id();
    await bots.create({ uid: bot, webhookUrl: "http://127.0.0.1:9/x", createdAt: 1, updatedAt: 1 });
    const known = new KnownBots(bots, 60_000, log);
    await known.refresh();
    const heard: string[][] = [];
    const listener = withoutBots({ offline: (_m, uids) => heard.push(uids) }, known);
    const person = id();
    listener.offline({ sender: person } as never, [bot]);
    listener.offline({ sender: person } as never, [bot, person]);
    expect(heard).toEqual([[person]]);
  });
});

describe("webhook URLs", () => {
  const limits = { maxChars: 100, hosts: "" };
  it("takes http(s) URLs and refuses others with INVALID_ARGUMENT", () => {
    expect(checkBotWebhookUrl("https://bots.example.com/hook?x=1", limits)).toBe("https://bots.example.com/hook?x=1");
    expect(checkBotWebhookUrl("http://10.0.0.7:8080/hook", limits)).toBe("http://10.0.0.7:8080/hook");
    for (const url of [
      "ftp://a.test/x",
      "nope",
      "https://u:p@a.test/",
      "https://a.test/#x",
      `https://a.test/${"x".repeat(100)}`,
    ]) {
      expect(() => checkBotWebhookUrl(url, limits)).toThrow(AppError);
      try {
        checkBotWebhookUrl(url, limits);
      } catch (err) {
        expect((err as AppError).code).toBe(ErrorCode.INVALID_ARGUMENT);
      }
    }
  });

  it("keeps to BOTS_WEBHOOK_HOSTS when it is set", () => {
    const hosts = { maxChars: 2048, hosts: "bots.example.com, *.hooks.example.net" };
    expect(checkBotWebhookUrl("https://bots.example.com/a", hosts)).toBeTruthy();
    expect(checkBotWebhookUrl("https://eu.hooks.example.net/a", hosts)).toBeTruthy();
    for (const url of ["http://127.0.0.1/a", "http://169.254.169.254/latest", "https://evil.example.com/"]) {
      expect(() => checkBotWebhookUrl(url, hosts)).toThrow(/BOTS_WEBHOOK_HOSTS/);
    }
  });
});

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAdapters, startChatStorageJobs } from "../src/compose.js";
import { ConfigError, loadConfig } from "../src/config/load.js";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair, type Uid, uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { MemoryJobLocks } from "../src/routing/memory/job-locks.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { SqliteWebhookOutboxStore } from "../src/storage/sqlite/webhook-outbox-store.js";
import { HttpBeforeSendHook, rejection } from "../src/webhooks/before-send.js";
import { backoffMs, WebhookDispatcher } from "../src/webhooks/dispatcher.js";
import { parseEndpoints } from "../src/webhooks/endpoints.js";
import { HttpWebhookSender } from "../src/webhooks/sender.js";
import { createChatWebhooks, webhookEndpoints } from "../src/webhooks/setup.js";
import { textMessage } from "./helpers/messages.js";
import { type TempSqlite, tempSqlite } from "./helpers/sqlite.js";
import { until } from "./helpers/waits.js";
import { eventOf, startWebhookReceiver, type WebhookReceiver } from "./helpers/webhook-receiver.js";

/**
 * Webhooks (issue 18) between the outbox and a real HTTP receiver on a local port: the
 * dispatcher over the SQLite outbox (signatures as the README's example checks them, retries
 * with backoff in order per conversation, dead events, the lease), the before-send hook's
 * answers and failures, and WEBHOOK_ENDPOINTS' syntax.
 */

const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const log = createLogger("webhooks-test", "silent");
let receiver: WebhookReceiver;
let db: TempSqlite;
let next = 7_490_000_000_000_000_000n;
const id = () => uidOf(next++);

function settings(overrides: Partial<Config> = {}): Config {
  return loadConfig(
    {},
    {
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RETRY_BASE_MS: 40,
      WEBHOOK_RETRY_MAX_MS: 200,
      WEBHOOK_POLL_MS: 20,
      WEBHOOK_TIMEOUT_MS: 1000,
      WEBHOOK_LEASE_MS: 300,
      ...overrides,
    },
  );
}

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
});
afterAll(async () => {
  await receiver.close();
});
afterEach(() => {
  receiver.calls.length = 0;
  receiver.answer = () => ({ status: 200 });
  db?.remove();
});

/** A fresh SQLite file whose message store writes after-send rows, and a dispatcher on it. */
function setUp(config: Config, endpoints = `message.after_send=${receiver.url()}`, locks?: MemoryJobLocks) {
  db = tempSqlite("sc-webhooks-");
  const messages = new SqliteMessageStore(db.db, { afterSendOutbox: true });
  const outbox = new SqliteWebhookOutboxStore(db.db);
  const sender = new HttpWebhookSender(SECRET);
  const metrics = createMetrics("chat");
  const dispatcher = new WebhookDispatcher({
    outbox,
    endpoints: parseEndpoints(endpoints),
    sender,
    settings: config,
    locks,
    log,
    metrics,
  });
  return { messages, outbox, sender, metrics, dispatcher };
}

async function send(messages: SqliteMessageStore, from: Uid, to: Uid, text: string) {
  return (
    await messages.append(textMessage(from, to, text, { msgId: id(), clientMsgId: `c-${id()}`, sentAtMs: Date.now() }))
  ).message;
}

const texts = (calls: typeof receiver.calls, convId: string) =>
  calls
    .map(eventOf)
    .filter((e) => e.data.convId === convId)
    .map((e) => e.data.text);

describe("webhook dispatcher", () => {
  it("sends each stored message once, signed so that the README's example verifies it", async () => {
    const { messages, dispatcher, sender, outbox } = setUp(settings());
    const [a, b] = [id(), id()];
    const m = await send(messages, a, b, "hello hooks");
    const [report] = await dispatcher.runOnce();
    expect(report).toMatchObject({ ran: true, scanned: 1, delivered: 1, failed: 0 });
    expect(receiver.calls.length).toBe(1);
    const call = receiver.calls[0];
    if (!call) throw new Error("no call");
    expect(call.verified).toBe(true);
    expect(call.headers["webhook-id"]).toBe(`msg_${m.convId}_1`);
    expect(Math.abs(Number(call.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(5);
    expect(eventOf(call)).toMatchObject({
      type: "message.after_send",
      id: `msg_${m.convId}_1`,
      data: { convId: m.convId, seq: 1, msgId: m.msgId, sender: a, recipient: b, text: "hello hooks" },
    });
    // What a receiver refuses: another body, another secret, a timestamp out of the tolerance.
    const { readmeVerifier } = await import("./helpers/webhook-receiver.js");
    const verify = await readmeVerifier();
    expect(verify(SECRET, call.headers, call.body.replace("hello", "HELLO"))).toBe(false);
    expect(verify("whsec_b3RoZXI=", call.headers, call.body)).toBe(false);
    const ts = Number(call.headers["webhook-timestamp"]);
    expect(verify(SECRET, call.headers, call.body, ts + 299)).toBe(true);
    expect(verify(SECRET, call.headers, call.body, ts + 301)).toBe(false);
    // Delivered: the row is gone, a second pass sends nothing.
    expect(await outbox.scan("sqlite", "", 10)).toEqual([]);
    await dispatcher.runOnce();
    expect(receiver.calls.length).toBe(1);
    await sender.close();
  });

  it("retries a failing conversation with backoff while the others go on, then sends it in seq order", async () => {
    const { messages, dispatcher, sender, metrics } = setUp(settings());
    const [a, b, c] = [id(), id(), id()];
    const slow = convIdForPair(a, b);
    const other = convIdForPair(a, c);
    let failures = 0;
    receiver.answer = (call) => {
      const e = eventOf(call);
      // The slow conversation's first event fails twice.
      if (e.data.convId === slow && e.data.seq === 1 && failures < 2) {
        failures++;
        return { status: 503 };
      }
      return { status: 200 };
    };
    for (const text of ["s1", "s2", "s3"]) await send(messages, a, b, text);
    for (const text of ["o1", "o2"]) await send(messages, a, c, text);
    dispatcher.start();
    try {
      await until("the other conversation's events", () => texts(receiver.calls, other).length === 2);
      await until("the slow conversation's events", () => texts(receiver.firsts(), slow).length === 3);
    } finally {
      await dispatcher.stop();
      await sender.close();
    }
    // Every attempt of the slow conversation was its first event until it went through; then in order.
    expect(texts(receiver.calls, slow)).toEqual(["s1", "s1", "s1", "s2", "s3"]);
    expect(texts(receiver.calls, other)).toEqual(["o1", "o2"]);
    // The attempts were spaced by the backoff (40 ms, then 80, each with jitter: at least half).
    const attempts = receiver.calls.filter((c) => eventOf(c).data.convId === slow && eventOf(c).data.seq === 1);
    expect((attempts[1]?.atMs ?? 0) - (attempts[0]?.atMs ?? 0)).toBeGreaterThanOrEqual(15);
    expect((attempts[2]?.atMs ?? 0) - (attempts[1]?.atMs ?? 0)).toBeGreaterThanOrEqual(35);
    expect(
      new Set(
        receiver.calls
          .filter((c) => eventOf(c).data.seq === 1 && eventOf(c).data.convId === slow)
          .map((c) => c.headers["webhook-id"]),
      ).size,
    ).toBe(1);
    const failed = await metrics.webhookFailed.get();
    expect(failed.values.find((v) => v.labels.type === "message.after_send")?.value).toBe(2);
  });

  it("marks an event dead after WEBHOOK_MAX_ATTEMPTS, keeps it, and lets its conversation go on", async () => {
    const { messages, dispatcher, sender, metrics, outbox } = setUp(settings({ WEBHOOK_MAX_ATTEMPTS: 3 }));
    const [a, b] = [id(), id()];
    receiver.answer = (call) => (eventOf(call).data.text === "poison" ? { status: 500 } : { status: 200 });
    const m = await send(messages, a, b, "poison");
    await send(messages, a, b, "after it");
    dispatcher.start();
    try {
      await until("the event after the dead one", () => texts(receiver.calls, m.convId).includes("after it"));
    } finally {
      await dispatcher.stop();
      await sender.close();
    }
    expect(texts(receiver.calls, m.convId)).toEqual(["poison", "poison", "poison", "after it"]);
    const dead = db.db.prepare("SELECT dead, attempts, last_error FROM webhook_outbox").all();
    expect(dead).toEqual([{ dead: 1, attempts: 3, last_error: `${receiver.url()}: HTTP 500` }]);
    expect(await outbox.scan("sqlite", "", 10)).toEqual([]);
    expect((await metrics.webhookDead.get()).values[0]?.value).toBe(1);
  });

  it("does not call an endpoint that took the event again when another failed", async () => {
    const two = `message.after_send=${receiver.url("/a")} ${receiver.url("/b")}`;
    const { messages, dispatcher, sender } = setUp(settings(), two);
    let bFailed = false;
    receiver.answer = (call) => {
      if (call.path === "/b" && !bFailed) {
        bFailed = true;
        return { status: 500 };
      }
      return { status: 204 };
    };
    await send(messages, id(), id(), "to both");
    dispatcher.start();
    try {
      await until("b took it", () => receiver.calls.filter((c) => c.path === "/b").length === 2);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await dispatcher.stop();
      await sender.close();
    }
    expect(receiver.calls.map((c) => c.path)).toEqual(["/a", "/b", "/b"]);
  });

  it("sends an instance from one dispatcher at a time: another takes it once the holder's lease lapses", async () => {
    const locks = new MemoryJobLocks();
    const config = settings({ WEBHOOK_LEASE_MS: 300 });
    const first = setUp(config, undefined, locks);
    const second = new WebhookDispatcher({
      outbox: first.outbox,
      endpoints: parseEndpoints(`message.after_send=${receiver.url()}`),
      sender: first.sender,
      settings: config,
      locks,
      log,
    });
    await send(first.messages, id(), id(), "one");
    expect((await first.dispatcher.runOnce())[0]?.ran).toBe(true);
    // The holder keeps its lease across passes; the other is refused while it lives.
    await send(first.messages, id(), id(), "two");
    expect((await second.runOnce())[0]?.ran).toBe(false);
    expect((await first.dispatcher.runOnce())[0]?.delivered).toBe(1);
    // The holder stops (its process died): within a lease the other takes over.
    await send(first.messages, id(), id(), "three");
    await new Promise((r) => setTimeout(r, 350));
    expect((await second.runOnce())[0]).toMatchObject({ ran: true, delivered: 1 });
    expect(receiver.calls.map((c) => eventOf(c).data.text)).toEqual(["one", "two", "three"]);
    await first.sender.close();
  });

  it("backs off exponentially up to the cap", () => {
    const s = { WEBHOOK_RETRY_BASE_MS: 1000, WEBHOOK_RETRY_MAX_MS: 10_000 };
    expect([1, 2, 3, 4, 5, 9].map((n) => backoffMs(n, s, () => 1))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(backoffMs(3, s, () => 0)).toBe(2000);
  });
});

describe("webhooks as the embedded process composes them", () => {
  it("stores after-send rows only with an endpoint, and the process's storage jobs dispatch them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sc-webhooks-compose-"));
    const open = (endpoints: string) =>
      createAdapters(
        settings({ STORAGE_BACKEND: "sqlite", ROUTING_BACKEND: "memory", DATA_DIR: dir, WEBHOOK_ENDPOINTS: endpoints }),
        log,
      );
    try {
      // No endpoint: the append writes no row, and no dispatcher runs.
      const plain = await open("");
      const [a, b, c] = [id(), id(), id()];
      await plain.messages.append(textMessage(a, b, "unhooked", { msgId: id(), clientMsgId: "p1", sentAtMs: 1 }));
      expect(await plain.outbox.scan("sqlite", "", 10)).toEqual([]);
      await plain.close();
      // An after-send endpoint: the row is written with the message and sent by the process's jobs.
      const config = settings({
        STORAGE_BACKEND: "sqlite",
        ROUTING_BACKEND: "memory",
        DATA_DIR: dir,
        WEBHOOK_ENDPOINTS: `message.after_send=${receiver.url()}`,
      });
      const hooked = await createAdapters(config, log);
      const stop = startChatStorageJobs(hooked, config, log, createMetrics("chat"), () => undefined);
      try {
        const { message } = await hooked.messages.append(
          textMessage(a, c, "hooked", { msgId: id(), clientMsgId: "h1", sentAtMs: 1 }),
        );
        await until("the event", () => receiver.calls.length === 1);
        expect(eventOf(receiver.calls[0] as never)).toMatchObject({
          id: `msg_${message.convId}_1`,
          data: { text: "hooked" },
        });
        await until("the row deleted", async () => (await hooked.outbox.scan("sqlite", "", 10)).length === 0);
      } finally {
        await stop();
        await hooked.close();
      }
      expect(receiver.calls.map((call) => eventOf(call).data.text)).toEqual(["hooked"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("before-send hook", () => {
  const message = { convId: "p:1:2", sender: "1", recipient: "2", clientMsgId: "c", kind: "text", text: "hi" };
  const hook = (failOpen: boolean, sender: HttpWebhookSender) =>
    new HttpBeforeSendHook({ url: receiver.url("/before"), sender, timeoutMs: 200, failOpen, maxTextChars: 10, log });

  it("answers allow, reject and rewrite as the endpoint says, signed as the events are", async () => {
    const sender = new HttpWebhookSender(SECRET);
    const answers = [
      { action: "allow" },
      { action: "reject", code: 42, message: "no links" },
      { action: "reject" },
      { action: "rewrite", text: "*" },
    ];
    let i = 0;
    receiver.answer = () => ({ status: 200, body: JSON.stringify(answers[i++]) });
    const h = hook(false, sender);
    expect(await h.check(message, "9")).toEqual({ action: "allow" });
    expect(await h.check(message, "9")).toEqual({ action: "reject", code: 42, message: "no links" });
    expect(await h.check(message, "9")).toEqual({ action: "reject" });
    expect(await h.check(message, "9")).toEqual({ action: "rewrite", text: "*" });
    expect(receiver.calls.every((c) => c.verified && c.headers["webhook-id"] === "bs_9")).toBe(true);
    expect(eventOf(receiver.calls[0] as never)).toMatchObject({ type: "message.before_send", data: message });
    const rejected = rejection({ code: 42, message: "no links" });
    expect([rejected.code, rejected.message]).toEqual([ErrorCode.MESSAGE_REJECTED, "42: no links"]);
    expect(rejection({}).message).toBe("rejected");
    await sender.close();
  });

  it("fails closed (UNAVAILABLE) or open on a timeout, an error, a bad answer or an invalid rewrite", async () => {
    const sender = new HttpWebhookSender(SECRET);
    const failures = [
      { status: 200, body: '{"action":"allow"}', delayMs: 400 },
      { status: 500, body: "" },
      { status: 200, body: '{"action":"maybe"}' },
      { status: 200, body: '{"action":"reject","code":0}' },
      { status: 200, body: '{"action":"rewrite","text":"far too long for ten"}' },
      { status: 200, body: '{"action":"rewrite","text":""}' },
    ];
    for (const failure of failures) {
      receiver.answer = () => failure;
      await expect(hook(false, sender).check(message, "1")).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      expect(await hook(true, sender).check(message, "1")).toEqual({ action: "allow" });
    }
    await sender.close();
  });
});

describe("webhook settings", () => {
  it("parses WEBHOOK_ENDPOINTS rules, families and *", () => {
    const t = parseEndpoints("message.after_send,user.online=http://a/h http://b/h; group.*=https://c/h ;*=http://d/h");
    expect(t.urlsFor("message.after_send")).toEqual(["http://a/h", "http://b/h", "http://d/h"]);
    expect(t.urlsFor("group.dissolved")).toEqual(["https://c/h", "http://d/h"]);
    expect(t.urlsFor("friend.removed")).toEqual(["http://d/h"]);
    expect(parseEndpoints("").any).toBe(false);
    expect(parseEndpoints("  ").subscribed("user.online")).toBe(false);
  });

  it("refuses a bad rule at start, naming it, and endpoints without a secret", () => {
    for (const bad of [
      "message.sent=http://a/h",
      "user.online=ftp://a/h",
      "user.online=",
      "http://a/h",
      "user.online=not a url",
    ]) {
      expect(() => loadConfig({ WEBHOOK_ENDPOINTS: bad })).toThrow(/WEBHOOK_ENDPOINTS/);
    }
    expect(() => loadConfig({ WEBHOOK_BEFORE_SEND_URL: "nope" })).toThrow(/WEBHOOK_BEFORE_SEND_URL/);
    const noSecret = loadConfig({ WEBHOOK_ENDPOINTS: "user.online=http://a/h" });
    expect(() => webhookEndpoints(noSecret)).toThrow(ConfigError);
    const hookNoSecret = loadConfig({ WEBHOOK_BEFORE_SEND_URL: "http://a/h" });
    expect(() => createChatWebhooks(hookNoSecret, { ids: { next: () => "1" }, log })).toThrow(/WEBHOOK_SECRET/);
    // Nothing configured: nothing built.
    const none = createChatWebhooks(loadConfig({}), { ids: { next: () => "1" }, log });
    expect([none.events, none.beforeSend]).toEqual([undefined, undefined]);
  });
});

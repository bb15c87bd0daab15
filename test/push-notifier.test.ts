import { afterAll, beforeAll, describe, expect, it } from "vitest";
import webpush from "web-push";
import type { ChatMessage } from "../packages/protocol/src/wire.js";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { loadConfig } from "../src/config/load.js";
import { uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { createMetrics, type Metrics } from "../src/metrics/metrics.js";
import { pushNotifierSettings } from "../src/push/create.js";
import { NEUTRAL_BODY, PushNotifier, type PushNotifierSettings } from "../src/push/notifier.js";
import { WebPushProvider } from "../src/push/web-push.js";
import type { DeviceName } from "../src/routing/ports.js";
import type { Uid } from "../src/storage/ports.js";
import { SqliteConversationStore } from "../src/storage/sqlite/conversation-store.js";
import { SqliteGroupStore } from "../src/storage/sqlite/group-store.js";
import { SqliteMessageStore } from "../src/storage/sqlite/message-store.js";
import { SqlitePushDeviceStore } from "../src/storage/sqlite/push-device-store.js";
import { SqliteUserStore } from "../src/storage/sqlite/user-store.js";
import { textMessage } from "./helpers/messages.js";
import { type TempSqlite, tempSqlite } from "./helpers/sqlite.js";
import { startWebPushReceiver, type TestSubscription, type WebPushReceiver } from "./helpers/web-push-receiver.js";

/**
 * The notifier's rules, on the embedded stores (SQLite) and a local Web Push service that
 * decrypts what it gets: who is notified (not for events, not the sender, not in a muted
 * conversation, only users with devices), what (title, preview or the neutral body, badge =
 * total unread), a device dropped when its service says gone, and the bounded queue.
 */
const keys = webpush.generateVAPIDKeys();
const log = createLogger("push-notifier-test", "silent");
let sqlite: TempSqlite;
let receiver: WebPushReceiver;
let users: SqliteUserStore;
let messages: SqliteMessageStore;
let groups: SqliteGroupStore;
let conversations: SqliteConversationStore;
let devices: SqlitePushDeviceStore;
let provider: WebPushProvider;
let next = 7_600_000_000_000_000_000n;
const id = () => uidOf(next++);

const config = () =>
  loadConfig({
    LOG_LEVEL: "warn",
    WEB_PUSH_VAPID_PUBLIC_KEY: keys.publicKey,
    WEB_PUSH_VAPID_PRIVATE_KEY: keys.privateKey,
    WEB_PUSH_SUBJECT: "mailto:ops@example.com",
    WEB_PUSH_ENDPOINT_HOSTS: "127.0.0.1",
  });

function notifier(settings: Partial<PushNotifierSettings> = {}, metrics?: Metrics): PushNotifier {
  return new PushNotifier({
    providers: [provider],
    devices,
    conversations,
    users,
    groups,
    settings: { ...pushNotifierSettings(config()), ...settings },
    log,
    ...(metrics ? { metrics } : {}),
  });
}

async function user(name: string): Promise<Uid> {
  const uid = id();
  await users.create({
    uid,
    name: `${name}${uid.slice(-6)}`,
    email: `${uid}@example.test`,
    passwordHash: "x",
    createdAt: 1,
  });
  return uid;
}

async function subscribed(uid: Uid, deviceId = "browser", kind: DeviceName = "web"): Promise<TestSubscription> {
  const sub = receiver.subscribe();
  await devices.register(
    { uid, deviceId, provider: "webpush", kind, token: JSON.stringify(sub.json), updatedAt: Date.now() },
    10,
  );
  return sub;
}

async function send(from: Uid, to: Uid, text: string): Promise<ChatMessage> {
  const { message } = await messages.append(
    textMessage(from, to, text, { msgId: id(), clientMsgId: `c${id()}`, sentAtMs: Date.now() }),
  );
  return message as unknown as ChatMessage;
}

const nameOf = async (uid: Uid) => (await users.byUid(uid))?.name;

beforeAll(async () => {
  sqlite = tempSqlite("sc-push-notifier-");
  users = new SqliteUserStore(sqlite.db);
  messages = new SqliteMessageStore(sqlite.db);
  groups = new SqliteGroupStore(sqlite.db);
  conversations = new SqliteConversationStore(sqlite.db);
  devices = new SqlitePushDeviceStore(sqlite.db);
  receiver = await startWebPushReceiver({ vapidPublicKey: keys.publicKey });
  provider = new WebPushProvider(config(), { agent: receiver.agent });
});

afterAll(async () => {
  await receiver?.close();
  sqlite?.remove();
});

describe("push notifier", () => {
  it("notifies an offline recipient's devices: sender's name, neutral body, badge of every unread, no preview by default", async () => {
    const [alice, bob, carol] = [await user("alice"), await user("bob"), await user("carol")];
    const laptop = await subscribed(bob, "laptop");
    const phone = await subscribed(bob, "phone");
    const n = notifier();
    await send(carol, bob, "an older unread one");
    await send(alice, bob, "first");
    const m = await send(alice, bob, "second, secret");
    n.offline(m, [bob]);
    await n.idle();
    const expected = {
      title: await nameOf(alice),
      body: NEUTRAL_BODY,
      convId: m.convId,
      seq: 2,
      badge: 3,
      tag: m.convId,
    };
    expect(receiver.of(laptop.id).map((p) => p.payload)).toEqual([expected]);
    expect(receiver.of(phone.id).map((p) => p.payload)).toEqual([expected]);
    // Once bob read it all, the badge says so.
    await conversations.markRead(bob, m.convId, 2);
    const again = await send(alice, bob, "third");
    n.offline(again, [bob]);
    await n.idle();
    expect(receiver.of(laptop.id).at(-1)?.payload).toMatchObject({ seq: 3, badge: 2 });
  });

  it("with previews on, shows the text (cut at PUSH_PREVIEW_MAX_CHARS); in a group, the group's name and the sender", async () => {
    const [alice, bob] = [await user("alice"), await user("bob")];
    const sub = await subscribed(bob);
    const n = notifier({ showPreview: true, previewMaxChars: 10, concurrency: 1 });
    n.offline(await send(alice, bob, "short"), [bob]);
    n.offline(await send(alice, bob, "a much longer text than ten"), [bob]);
    const groupId = id();
    await groups.create({ groupId, name: "climbers", owner: alice, members: [alice, bob], maxMembers: 10 });
    const { message } = await groups.append({
      groupId,
      msgId: id(),
      sender: alice,
      clientMsgId: `g${id()}`,
      kind: MessageKind.TEXT,
      text: "hi",
      sentAtMs: Date.now(),
    });
    await n.idle();
    const wide = notifier({ showPreview: true });
    wide.offline(message as unknown as ChatMessage, [alice, bob]);
    await wide.idle();
    const aliceName = await nameOf(alice);
    expect(receiver.of(sub.id).map((p) => [p.payload.title, p.payload.body])).toEqual([
      [aliceName, "short"],
      [aliceName, "a much lo…"],
      ["climbers", `${aliceName}: hi`],
    ]);
  });

  it("sends nothing for events, to the sender, in a muted conversation, or to a user without devices", async () => {
    const [alice, bob, dave] = [await user("alice"), await user("bob"), await user("dave")];
    const bobs = await subscribed(bob);
    const alices = await subscribed(alice);
    const n = notifier();
    const muted = await send(alice, bob, "muted");
    await conversations.setSettings(bob, muted.convId, { muted: true });
    // Alice sent it: her own devices get nothing, though she is listed.
    n.offline(muted, [bob, alice]);
    n.offline(await send(alice, dave, "no device"), [dave]);
    // The one that goes (so the test sees the queue ran), and an event in the same conversation.
    const other = await send(dave, bob, "unmuted");
    n.offline(other, [bob]);
    n.offline({ ...other, kind: MessageKind.RECALL_EVENT, seq: 99 }, [bob]);
    await n.idle();
    expect(receiver.of(bobs.id).map((p) => [p.payload.convId, p.payload.seq])).toEqual([[other.convId, other.seq]]);
    expect(receiver.of(alices.id)).toEqual([]);
  });

  it("pushes the devices of a kind the recipient has no session of, not those of its online kinds", async () => {
    const [alice, bob] = [await user("alice"), await user("bob")];
    const phone = await subscribed(bob, "phone", "mobile");
    const browser = await subscribed(bob, "browser", "web");
    const n = notifier();
    // Bob is on the desktop and in the browser: only his phone is pushed.
    const first = await send(alice, bob, "to your phone");
    n.kindsOffline(first, bob, ["desktop", "web"]);
    // Now also on the phone: nothing for him. The sender's own kinds never push her.
    const second = await send(alice, bob, "you are everywhere");
    n.kindsOffline(second, bob, ["desktop", "web", "mobile"]);
    n.kindsOffline(second, alice, []);
    await n.idle();
    expect(receiver.of(phone.id).map((p) => p.payload.seq)).toEqual([first.seq]);
    expect(receiver.of(browser.id)).toEqual([]);
  });

  it("reads a user's devices once per PUSH_DEVICE_CACHE_MS, and again once the provider called one gone", async () => {
    const [alice, bob] = [await user("alice"), await user("bob")];
    const phone = await subscribed(bob, "phone", "mobile");
    const n = notifier({ deviceCacheMs: 60_000 });
    n.kindsOffline(await send(alice, bob, "one"), bob, ["desktop"]);
    await n.idle();
    // Registered after the read: the cached list does not have it yet.
    const tablet = await subscribed(bob, "tablet", "mobile");
    n.kindsOffline(await send(alice, bob, "two"), bob, ["desktop"]);
    await n.idle();
    expect(receiver.of(phone.id)).toHaveLength(2);
    expect(receiver.of(tablet.id)).toEqual([]);
    // Gone: the cache forgets the user, and the next notification reads the devices again.
    receiver.markGone(phone.id);
    n.kindsOffline(await send(alice, bob, "three"), bob, ["desktop"]);
    await n.idle();
    n.kindsOffline(await send(alice, bob, "four"), bob, ["desktop"]);
    await n.idle();
    expect(receiver.of(tablet.id).map((p) => p.payload.body)).toEqual([NEUTRAL_BODY]);
    expect((await devices.list(bob)).map((d) => d.deviceId)).toEqual(["tablet"]);
  });

  it("drops a device its push service calls gone, and counts outcomes by provider", async () => {
    const [alice, bob] = [await user("alice"), await user("bob")];
    const sub = await subscribed(bob);
    receiver.markGone(sub.id);
    const metrics = createMetrics("push-test");
    const n = notifier({}, metrics);
    n.offline(await send(alice, bob, "into the void"), [bob]);
    await n.idle();
    expect(await devices.list(bob)).toEqual([]);
    const counted = await metrics.pushes.get();
    expect(counted.values).toEqual([
      expect.objectContaining({ labels: { provider: "webpush", outcome: "gone" }, value: 1 }),
    ]);
  });

  it("never holds the caller: past PUSH_QUEUE_MAX recipients are dropped and counted", async () => {
    const alice = await user("alice");
    const many = [await user("r"), await user("r"), await user("r"), await user("r")];
    const subs = await Promise.all(many.map((uid) => subscribed(uid)));
    const metrics = createMetrics("push-test");
    const n = notifier({ queueMax: 2, concurrency: 1 }, metrics);
    const sent = await Promise.all(many.map((uid) => send(alice, uid, "hi")));
    const started = performance.now();
    for (const [i, uid] of many.entries()) n.offline(sent[i] as ChatMessage, [uid]);
    expect(performance.now() - started).toBeLessThan(50);
    await n.idle();
    // Two wait in the queue (the workers start on the next turn of the event loop): the others find no room.
    const delivered = subs.filter((s) => receiver.of(s.id).length === 1).length;
    expect(delivered).toBe(2);
    expect((await metrics.pushQueueDropped.get()).values[0]?.value).toBe(2);
  });
});

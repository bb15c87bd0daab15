import type { ChatClient } from "@shardchat/sdk";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import webpush from "web-push";
import { DeviceKind } from "../packages/protocol/src/wire.js";
import { AccountDeletionRequest } from "../src/account/request-deletion.js";
import type { OfflineDeviceKinds, OfflineRecipients } from "../src/chat/offline-recipients.js";
import { ErrorCode, okOrThrow } from "../src/errors.js";
import { buildGateApp } from "../src/gate/app.js";
import { convIdForPair } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import { createLogger } from "../src/log/logger.js";
import { LogMailer } from "../src/mail/log-mailer.js";
import { pushNotifierSettings } from "../src/push/create.js";
import { NEUTRAL_BODY, PushNotifier } from "../src/push/notifier.js";
import { topicOf, WebPushProvider } from "../src/push/web-push.js";
import { RedisRateLimiter } from "../src/routing/redis/rate-limiter.js";
import { RedisVerifyCodeStore } from "../src/routing/redis/verify-code-store.js";
import { MysqlFriendStore } from "../src/storage/mysql/friend-store.js";
import type { Uid } from "../src/storage/ports.js";
import { ShardedAccountDeletionStore } from "../src/storage/sharded/account-deletion-store.js";
import { ShardedConversationStore } from "../src/storage/sharded/conversation-store.js";
import { ShardedGroupStore } from "../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../src/storage/sharded/message-store.js";
import { ShardedPushDeviceStore } from "../src/storage/sharded/push-device-store.js";
import { shardedUidPlacement } from "../src/storage/sharded/uid-placement.js";
import { createVerifyService } from "../src/verify/service.js";
import { type ChatCluster, type ClusterUser, startChatCluster } from "./helpers/chat-cluster.js";
import { until } from "./helpers/waits.js";
import { startWebPushReceiver, type TestSubscription, type WebPushReceiver } from "./helpers/web-push-receiver.js";

// Push notifications end to end (issue 18): two chat nodes in this process over three MariaDB
// shards and Redis, gate's push routes over the same status and shards, and a local Web Push
// service (test/helpers/web-push-receiver.ts) that checks each request's VAPID signature and
// decrypts its payload with the subscription's keys, as a browser does.

const keys = webpush.generateVAPIDKeys();
const log = createLogger("push-e2e-test", "warn");
let receiver: WebPushReceiver;
let cluster: ChatCluster;
let gate: FastifyInstance;
let devices: ShardedPushDeviceStore;
/** Previews on (PUSH_SHOW_PREVIEW=true) for every sender but those in `quietSenders`. */
let withPreview: PushNotifier;
/** The same notifier with previews off, for the senders in `quietSenders`. */
let withoutPreview: PushNotifier;
const quietSenders = new Set<string>();

beforeAll(async () => {
  receiver = await startWebPushReceiver({ vapidPublicKey: keys.publicKey });
  cluster = await startChatCluster({
    tag: "push",
    nodeIds: ["n1", "n2"],
    usersPerNode: 10,
    settings: {
      WEB_PUSH_VAPID_PUBLIC_KEY: keys.publicKey,
      WEB_PUSH_VAPID_PRIVATE_KEY: keys.privateKey,
      WEB_PUSH_SUBJECT: "mailto:ops@example.com",
      WEB_PUSH_ENDPOINT_HOSTS: receiver.host,
      PUSH_TOKEN_MAX_BYTES: 1024,
      GROUP_JOIN_CONSENT: "none",
    },
    stores: (sharded) => {
      devices = new ShardedPushDeviceStore(sharded);
      const conversations = new ShardedConversationStore(sharded);
      const groups = new ShardedGroupStore(sharded);
      const notifier = (showPreview: boolean) =>
        new PushNotifier({
          // The agent trusts the local push service's self-signed certificate.
          providers: [new WebPushProvider(cluster.config, { agent: receiver.agent })],
          devices,
          conversations,
          users: cluster.users,
          groups,
          settings: { ...pushNotifierSettings(cluster.config), showPreview },
          log,
        });
      // The cluster is not up yet while the stores are made: the notifiers are, on first use.
      const pick = (sender: string) => {
        withPreview ??= notifier(true);
        withoutPreview ??= notifier(false);
        return quietSenders.has(sender) ? withoutPreview : withPreview;
      };
      const byPreview: OfflineRecipients & OfflineDeviceKinds = {
        offline: (message, uids) => pick(message.sender).offline(message, uids),
        kindsOffline: (message, uid, online) => pick(message.sender).kindsOffline(message, uid, online),
      };
      return {
        messages: new ShardedMessageStore(sharded),
        groups,
        conversations,
        friends: new MysqlFriendStore(shardedUidPlacement(sharded)),
        pushNotifier: byPreview,
      };
    },
  });
  gate = await buildGateApp({
    users: cluster.users,
    verify: createVerifyService({
      codes: new RedisVerifyCodeStore(cluster.redis, cluster.config.REDIS_KEY_PREFIX),
      limiter: new RedisRateLimiter(cluster.redis, cluster.config.REDIS_KEY_PREFIX),
      mailer: new LogMailer(log),
      config: cluster.config,
      log,
    }),
    status: cluster.status.api,
    ids: new Snowflake({ workerId: 900 }),
    limiter: new RedisRateLimiter(cluster.redis, cluster.config.REDIS_KEY_PREFIX),
    config: cluster.config,
    log,
    pushDevices: devices,
  });
}, 300_000);

afterAll(async () => {
  await gate?.close();
  await withPreview?.close();
  await withoutPreview?.close();
  await cluster?.close();
  await receiver?.close();
});

/** Gate's answer to one push route, as the user (its login token). */
async function call(
  user: ClusterUser | undefined,
  method: "PUT" | "DELETE" | "GET",
  url: string,
  body?: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers = user ? { authorization: `Bearer ${user.token}`, "x-uid": user.uid } : {};
  const res = await gate.inject({ method, url, headers, ...(body ? { payload: body } : {}) });
  return { status: res.statusCode, json: res.json() };
}

/** The user registers a new browser subscription through gate. */
async function registerBrowser(user: ClusterUser, deviceId = "browser"): Promise<TestSubscription> {
  const sub = receiver.subscribe();
  const res = await call(user, "PUT", "/v1/push/devices", {
    deviceId,
    provider: "webpush",
    token: JSON.stringify(sub.json),
  });
  expect(res).toEqual({ status: 200, json: { error: ErrorCode.OK } });
  return sub;
}

/**
 * The user's client logs in as `device` (the web client by default: a browser's subscription is
 * a web device, pushed only while the user has no web session).
 */
async function online(
  user: ClusterUser,
  device: DeviceKind = DeviceKind.WEB,
): Promise<{ client: ChatClient; got: { convId: string; seq: number }[] }> {
  const got: { convId: string; seq: number }[] = [];
  const client = await cluster.connect(user, {
    device,
    heartbeat: false,
    ackDelayMs: 0,
    listen: (c) => c.on("message", (m: { convId: string; seq: number }) => got.push(m)),
  });
  return { client, got };
}

/** Closes the user's client and waits until its node has let the session go. */
async function goOffline(user: ClusterUser, client: ChatClient): Promise<void> {
  const node = cluster.nodes.get(user.nodeId);
  if (!node) throw new Error(`no node ${user.nodeId}`);
  const before = node.sessionCount();
  await client.close();
  await until("the session is gone from its node", () => node.sessionCount() === before - 1);
}

/** Lets every queued notification go out (both notifiers). */
async function settled(): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
  await withPreview?.idle();
  await withoutPreview?.idle();
}

const nameOf = async (uid: Uid) => (await cluster.users.byUid(uid))?.name;

describe("push notifications across two chat nodes and three shards", () => {
  it("gives the config, and refuses malformed registrations with their codes", async () => {
    const user = cluster.take("n1");
    expect(await call(undefined, "GET", "/v1/push/config")).toEqual({
      status: 200,
      json: { error: ErrorCode.OK, webPushPublicKey: keys.publicKey },
    });
    const sub = receiver.subscribe();
    const token = JSON.stringify(sub.json);
    // null: no login token at all.
    const refused = async (body: Record<string, unknown>, as: ClusterUser | null = user) =>
      (await call(as ?? undefined, "PUT", "/v1/push/devices", body)).json.error;
    expect(await refused({ deviceId: "d", provider: "webpush", token }, null)).toBe(ErrorCode.TOKEN_INVALID);
    expect(await refused({ deviceId: "d", provider: "webpush", token }, { ...user, token: "nope" })).toBe(
      ErrorCode.TOKEN_INVALID,
    );
    expect(await refused({ deviceId: "d", provider: "pager", token })).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await refused({ deviceId: "has space", provider: "webpush", token })).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await refused({ deviceId: "d", provider: "webpush" })).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await refused({ deviceId: "d", provider: "webpush", token: "not json" })).toBe(ErrorCode.INVALID_ARGUMENT);
    const http = JSON.stringify({ ...sub.json, endpoint: sub.json.endpoint.replace("https:", "http:") });
    expect(await refused({ deviceId: "d", provider: "webpush", token: http })).toBe(ErrorCode.INVALID_ARGUMENT);
    const elsewhere = JSON.stringify({ ...sub.json, endpoint: "https://internal.example/push" });
    expect(await refused({ deviceId: "d", provider: "webpush", token: elsewhere })).toBe(ErrorCode.INVALID_ARGUMENT);
    const badKey = JSON.stringify({ ...sub.json, keys: { ...sub.json.keys, p256dh: "AAAA" } });
    expect(await refused({ deviceId: "d", provider: "webpush", token: badKey })).toBe(ErrorCode.INVALID_ARGUMENT);
    const long = JSON.stringify({ ...sub.json, endpoint: `${sub.json.endpoint}?${"x".repeat(1100)}` });
    const tooLong = await call(user, "PUT", "/v1/push/devices", { deviceId: "d", provider: "webpush", token: long });
    expect(tooLong).toMatchObject({ status: 413, json: { error: ErrorCode.PAYLOAD_TOO_LARGE } });
    expect(await refused({ deviceId: "d", provider: "apns", token: "zz" })).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await devices.list(user.uid)).toEqual([]);

    // Registered (the subscription stored as its endpoint and keys), then removed: DELETE answers whether there was one.
    const registered = await registerBrowser(user, "d");
    expect((await devices.list(user.uid)).map((d) => [d.deviceId, d.provider, d.token])).toEqual([
      ["d", "webpush", JSON.stringify(registered.json)],
    ]);
    expect((await call(user, "DELETE", "/v1/push/devices/d")).json).toEqual({ error: ErrorCode.OK, removed: true });
    expect((await call(user, "DELETE", "/v1/push/devices/d")).json).toEqual({ error: ErrorCode.OK, removed: false });
    expect(await devices.list(user.uid)).toEqual([]);
  });

  it("pushes to an offline user's browser (payload decrypted: conversation, seq, title, preview, badge), not while it is online", async () => {
    const alice = cluster.take("n1");
    const bob = cluster.take("n2");
    const sub = await registerBrowser(bob);
    const a = await online(alice);
    const b = await online(bob);
    const convId = convIdForPair(alice.uid, bob.uid);
    await a.client.sendText(bob.uid, "while you are here");
    await until("bob's session has it", () => b.got.length === 1);
    await goOffline(bob, b.client);
    await a.client.sendText(bob.uid, "hello bob");
    await until("bob's browser is pushed", () => receiver.of(sub.id).length > 0);
    await settled();
    const pushes = receiver.of(sub.id);
    expect(pushes.map((p) => p.payload)).toEqual([
      { title: await nameOf(alice.uid), body: "hello bob", convId, seq: 2, badge: 2, tag: convId },
    ]);
    // One Topic per conversation: a service holding several keeps the newest.
    expect(pushes[0]?.topic).toBe(topicOf(convId));
    expect(pushes[0]?.ttl).toBe(cluster.config.PUSH_TTL_SECONDS);
  });

  it("pushes a device whose kind is offline while its user is online on another (the browser while on the desktop)", async () => {
    const alice = cluster.take("n1");
    const bob = cluster.take("n2");
    const browser = await registerBrowser(bob);
    const a = await online(alice);
    const desk = await online(bob, DeviceKind.DESKTOP);
    await a.client.sendText(bob.uid, "you are at your desk");
    await until("bob's desktop has it", () => desk.got.length === 1);
    await until("bob's browser is pushed", () => receiver.of(browser.id).length === 1);
    // The browser comes online too: the next message reaches both sessions and pushes nothing.
    const web = await online(bob, DeviceKind.WEB);
    await a.client.sendText(bob.uid, "now in the browser too");
    await until("both of bob's sessions have it", () => desk.got.length === 2 && web.got.length === 1);
    await settled();
    expect(receiver.of(browser.id).map((p) => p.payload.seq)).toEqual([1]);
  });

  it("pushes nothing for a conversation the recipient muted; others still go", async () => {
    const carol = cluster.take("n1");
    const dave = cluster.take("n2");
    const erin = cluster.take("n1");
    const sub = await registerBrowser(dave);
    const c = await online(carol);
    const d = await online(dave);
    const e = await online(erin);
    const muted = convIdForPair(carol.uid, dave.uid);
    await c.client.sendText(dave.uid, "first");
    await until("dave has it", () => d.got.length === 1);
    expect(await d.client.conversationSettings(muted, { muted: true })).toMatchObject({ muted: true });
    await goOffline(dave, d.client);
    await c.client.sendText(dave.uid, "muted, no push");
    await e.client.sendText(dave.uid, "not muted");
    const other = convIdForPair(erin.uid, dave.uid);
    await until("the unmuted one is pushed", () => receiver.of(sub.id).length > 0);
    await settled();
    expect(receiver.of(sub.id).map((p) => p.payload.convId)).toEqual([other]);
  });

  it('with previews off, the body is only "New message"', async () => {
    const frank = cluster.take("n2");
    const gina = cluster.take("n1");
    quietSenders.add(frank.uid);
    const sub = await registerBrowser(gina);
    const f = await online(frank);
    await f.client.sendText(gina.uid, "a secret the lock screen must not show");
    await until("gina's browser is pushed", () => receiver.of(sub.id).length > 0);
    expect(receiver.of(sub.id)[0]?.payload).toMatchObject({ title: await nameOf(frank.uid), body: NEUTRAL_BODY });
  });

  it("drops a device whose push service answers 410 Gone", async () => {
    const hank = cluster.take("n1");
    const ivy = cluster.take("n2");
    const gone = await registerBrowser(ivy, "old-browser");
    const kept = await registerBrowser(ivy, "new-browser");
    receiver.markGone(gone.id);
    const h = await online(hank);
    await h.client.sendText(ivy.uid, "are you there?");
    await until("the live browser is pushed", () => receiver.of(kept.id).length > 0);
    await until("the gone one is dropped", async () => (await devices.list(ivy.uid)).length === 1);
    expect((await devices.list(ivy.uid)).map((d) => d.deviceId)).toEqual(["new-browser"]);
    expect(receiver.refused.filter((r) => r.subscriptionId === gone.id).map((r) => r.status)).toEqual([410]);
  });

  it("pushes a group message to offline members on both nodes, titled with the group's name", async () => {
    const owner = cluster.take("n1");
    const onN1 = cluster.take("n1");
    const onN2 = cluster.take("n2");
    const subs = [await registerBrowser(onN1), await registerBrowser(onN2)];
    const o = await online(owner);
    const group = await o.client.createGroup("rope team", [onN1.uid, onN2.uid]);
    await o.client.sendGroupText(group.groupId, "summit at dawn");
    for (const sub of subs) await until("a member's browser is pushed", () => receiver.of(sub.id).length > 0);
    for (const sub of subs) {
      expect(receiver.of(sub.id).map((p) => p.payload)).toEqual([
        expect.objectContaining({
          title: "rope team",
          body: `${await nameOf(owner.uid)}: summit at dawn`,
          convId: `g:${group.groupId}`,
        }),
      ]);
    }
  });
  it("drops a deleted account's devices with gate's half of the deletion", async () => {
    const jim = cluster.take("n2");
    await registerBrowser(jim, "laptop");
    await registerBrowser(jim, "phone");
    const deletion = new AccountDeletionRequest({
      async revokeSessions(uid) {
        okOrThrow(await cluster.status.api.revokeTokens({ uid, token: "", all: true }));
      },
      deletions: new ShardedAccountDeletionStore(cluster.shards),
      users: cluster.users,
      pushDevices: devices,
      settings: cluster.config,
      log,
    });
    await deletion.request(jim.uid);
    expect(await devices.list(jim.uid)).toEqual([]);
    expect(await cluster.users.byUid(jim.uid)).toBeNull();
  });
});

import { once } from "node:events";
import { ChatClient, type ChatClientEvents } from "@shardchat/sdk";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeviceKind } from "../packages/protocol/src/wire.js";
import { type RunningChatNode, startChatNode } from "../src/chat/server.js";
import { createStorageAdapters, type StorageAdapters } from "../src/compose.js";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { type GrpcClient, grpcClient, startGrpcServer } from "../src/grpc/api.js";
import { convIdForPair, type Uid } from "../src/ids/identifiers.js";
import { Snowflake } from "../src/ids/snowflake.js";
import { createLogger } from "../src/log/logger.js";
import { RedisNodeRegistry } from "../src/routing/redis/node-registry.js";
import { RedisSessionRoutes } from "../src/routing/redis/session-routes.js";
import { RedisTokenStore } from "../src/routing/redis/token-store.js";
import { createRedis, type RedisClient } from "../src/routing/redis-client.js";
import { addStatusService } from "../src/status/server.js";
import { createStatusService } from "../src/status/service.js";
import { evenShardMap, instanceOf } from "../src/storage/sharded/shard-map.js";
import { configuredInstances } from "../src/storage/sharded/shards.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { codeOf } from "./helpers/waits.js";

/**
 * Friends, conversation lists, read receipts and multi-device sessions across two chat nodes
 * (users deliberately on different nodes, by the ring) over three MySQL shards (friend rows
 * and conversations on different shards), with real sockets, Redis and MariaDB. Friends-only
 * 1:1 messaging is switched on (CHAT_REQUIRE_FRIENDSHIP).
 */
const PASSWORD_HASH = "scrypt$very-secret-hash";

describe("friends, conversations and devices across chat nodes", () => {
  let config: Config;
  let redis: RedisClient;
  let storage: StorageAdapters;
  let shardUrls: string[];
  let statusServer: { port: number; close(): Promise<void> };
  let status: GrpcClient<typeof StatusServiceService>;
  const nodes = new Map<string, RunningChatNode>();
  const clients: ChatClient[] = [];
  const names = new Map<string, string>();
  let A: Uid; // on n1
  let B: Uid; // on n2
  let C: Uid;
  let D: Uid;
  const tag = Math.random().toString(36).slice(2, 8);
  let shardOf: (key: string) => string;

  /** Rows of a query on each shard database, by shard id. */
  async function onShards(sql: string, params: unknown[]): Promise<Map<string, unknown[]>> {
    const found = new Map<string, unknown[]>();
    for (const [i, url] of shardUrls.entries()) {
      const conn = await mysql.createConnection({ uri: url, supportBigNumbers: true, bigNumberStrings: true });
      const [rows] = await conn.query(sql, params);
      await conn.end();
      found.set(`s${i}`, rows as unknown[]);
    }
    return found;
  }

  const tokenOf = new Map<ChatClient, string>();

  /** Logs uid in on its ring node with a fresh token (a second device gets its own), or `reuse`. */
  async function connect(
    uid: string,
    device = DeviceKind.UNSPECIFIED,
    transport: "tcp" | "ws" = "tcp",
    reuse?: string,
  ) {
    const owner = await status.api.getChatNode({ uid });
    const node = nodes.get(owner.node?.nodeId ?? "") as RunningChatNode;
    const token = reuse ?? (await status.api.issueToken({ uid })).token;
    const endpoint =
      transport === "tcp"
        ? ({ transport: "tcp", host: "127.0.0.1", port: node.info.tcpPort } as const)
        : ({ transport: "ws", url: node.info.wsUrl } as const);
    // Acks at once: a device that logs in syncs what the user has not acked yet, and these
    // tests expect the other devices' earlier messages acked by then (ackDelayMs would hold
    // them back 20 ms).
    const client = await ChatClient.connect(endpoint, { device, heartbeat: false, ackDelayMs: 0 });
    clients.push(client);
    await client.login(uid, token);
    tokenOf.set(client, token);
    return client;
  }

  function next<E extends keyof ChatClientEvents>(client: ChatClient, event: E): Promise<ChatClientEvents[E]> {
    return once(client, event) as Promise<ChatClientEvents[E]>;
  }

  beforeAll(async () => {
    const base = testConfig({
      NODE_HEARTBEAT_INTERVAL_MS: 500,
      NODE_TTL_MS: 5000,
      CHAT_PEER_REFRESH_MS: 200,
      CHAT_REQUIRE_FRIENDSHIP: true,
    });
    // Three shard databases on the machine's MariaDB: separate pools and schemas, as separate
    // instances would be, without waiting for the multi-instance stack.
    shardUrls = [0, 1, 2].map((i) => `${base.MYSQL_URL}_s${i}`);
    config = { ...base, MYSQL_URL: shardUrls[0] as string, MYSQL_SHARDS: shardUrls.join(","), SHARD_SLOTS: 64 };
    const log = createLogger("friends-test", config.LOG_LEVEL);
    storage = await createStorageAdapters(config, log);
    redis = createRedis(config);
    const registry = new RedisNodeRegistry(redis, config.REDIS_KEY_PREFIX);
    const statusApi = createStatusService({
      registry: registry,
      tokens: new RedisTokenStore(redis, config.REDIS_KEY_PREFIX),
      config,
      log,
    });
    statusServer = await startGrpcServer("127.0.0.1:0", (server) =>
      addStatusService(server, statusApi, { registry, probeTimeoutMs: config.NODE_PROBE_TIMEOUT_MS, log }),
    );
    status = grpcClient(StatusServiceService, `127.0.0.1:${statusServer.port}`);
    for (const [i, nodeId] of ["n1", "n2"].entries()) {
      nodes.set(
        nodeId,
        await startChatNode({
          config: { ...config, CHAT_NODE_ID: nodeId, CHAT_TCP_PORT: 0, CHAT_WS_PORT: 0, CHAT_GRPC_PORT: 0 },
          log,
          messages: storage.messages,
          users: storage.users,
          friends: storage.friends,
          conversations: storage.conversations,
          routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 120),
          status: status.api,
          ids: new Snowflake({ workerId: i + 1 }),
        }),
      );
    }
    // A and C on n1, B and D on n2 (by the ring), with A's and B's rows on different shards.
    const map = evenShardMap(configuredInstances(config), config.SHARD_SLOTS);
    shardOf = (key) => instanceOf(map, key).id;
    const ids = new Snowflake({ workerId: 9 });
    const picked: Record<"A" | "B" | "C" | "D", Uid | ""> = { A: "", B: "", C: "", D: "" };
    for (let i = 0; i < 200 && Object.values(picked).some((u) => u === ""); i++) {
      const uid = ids.next();
      const owner = (await status.api.getChatNode({ uid })).node?.nodeId;
      if (owner === "n1") {
        if (!picked.A) picked.A = uid;
        else if (!picked.C) picked.C = uid;
      } else if (owner === "n2" && picked.A) {
        if (!picked.B && shardOf(uid) !== shardOf(picked.A)) picked.B = uid;
        else if (picked.B && !picked.D) picked.D = uid;
      }
    }
    ({ A, B, C, D } = picked as Record<"A" | "B" | "C" | "D", Uid>);
    const given = { [A]: "Zed", [B]: "zelda", [C]: "Quinn", [D]: "quill" };
    for (const [uid, first] of Object.entries(given) as [Uid, string][]) {
      const name = `${first}_${tag}`;
      await storage.users.create({
        uid,
        name,
        email: `${name.toLowerCase()}@example.test`,
        passwordHash: PASSWORD_HASH,
        createdAt: Date.now(),
      });
      names.set(uid, name);
    }
    expect([A, B, C, D].every(Boolean)).toBe(true);
  }, 300_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    for (const node of nodes.values()) await node.close();
    status?.close();
    await statusServer?.close();
    await storage?.close();
    if (redis) {
      const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    }
    for (const url of shardUrls ?? []) await dropTestDatabase({ ...config, MYSQL_URL: url });
  });

  let a: ChatClient; // A's desktop, on n1
  let b: ChatClient; // B's desktop, on n2
  let bWeb: ChatClient; // B's browser, on n2

  it("finds users by uid, email and name prefix, and never shows an email or password hash", async () => {
    a = await connect(A);
    b = await connect(B);
    const byUid = await a.searchUsers(B);
    expect(byUid).toEqual([{ uid: B, name: names.get(B) }]);
    const byEmail = await a.searchUsers(`${names.get(B)?.toUpperCase()}@EXAMPLE.TEST`);
    expect(byEmail.map((u) => u.uid)).toEqual([B]);
    // "ZE" matches Zed_ and zelda_ of this run (other runs' users have other tags, so the
    // prefix includes the tag's absence: filter to this run).
    const byPrefix = (await a.searchUsers("ze")).filter((u) => u.name.endsWith(tag));
    expect(byPrefix.map((u) => u.name).sort()).toEqual([`Zed_${tag}`, `zelda_${tag}`].sort());
    for (const reply of [byUid, byEmail, byPrefix]) {
      for (const user of reply) expect(Object.keys(user).sort()).toEqual(["name", "uid"]);
      expect(JSON.stringify(reply)).not.toContain("@");
      expect(JSON.stringify(reply)).not.toContain(PASSWORD_HASH);
    }
    expect(await codeOf(a.searchUsers("   "))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("refuses a 1:1 message between users who are not friends", async () => {
    expect(await codeOf(a.sendText(B, "hello stranger"))).toBe(ErrorCode.NOT_FRIENDS);
  });

  it("pushes a friend application to the other node at once, and the answer back", async () => {
    const applied = next(b, "friendApplication");
    await a.applyFriend(B, "hi, it's A");
    const [application] = await applied;
    expect(application).toMatchObject({ from: { uid: A, name: names.get(A) }, toUid: B, message: "hi, it's A" });
    expect((await b.friendApplications()).map((x) => x.from?.uid)).toEqual([A]);

    const answered = next(a, "friendReply");
    await b.replyFriend(A, true);
    const [reply] = await answered;
    expect(reply).toEqual({ user: { uid: B, name: names.get(B) }, accepted: true });
    expect(await b.friendApplications()).toEqual([]);

    const [mine, theirs] = [await a.friends(), await b.friends()];
    expect(mine.map((f) => [f.user?.uid, f.online])).toEqual([[B, true]]);
    // Two rows, each on its owner's shard, and A's and B's shards differ.
    const rows = await onShards("SELECT uid, friend_uid FROM friendships WHERE uid IN (?, ?)", [A, B]);
    const where = [...rows].flatMap(([shard, list]) =>
      (list as { uid: string; friend_uid: string }[]).map((r) => [shard, r.uid, r.friend_uid]),
    );
    expect(where.sort()).toEqual(
      [
        [shardOf(A), A, B],
        [shardOf(B), B, A],
      ].sort(),
    );
    expect(shardOf(A)).not.toBe(shardOf(B));
    expect(theirs.map((f) => [f.user?.uid, f.online])).toEqual([[A, true]]);
    expect(await codeOf(a.applyFriend(B))).toBe(ErrorCode.ALREADY_FRIENDS);
    expect(await codeOf(b.replyFriend(A, true))).toBe(ErrorCode.APPLICATION_NOT_FOUND);
    expect(await codeOf(a.applyFriend(A))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("keeps applications for an offline user, who sees them after login and can decline", async () => {
    const c = await connect(C);
    await c.applyFriend(D, "from C while D is away");
    const d = await connect(D);
    const pending = await d.friendApplications();
    expect(pending.map((x) => [x.from?.uid, x.from?.name, x.message])).toEqual([
      [C, names.get(C), "from C while D is away"],
    ]);
    const declined = next(c, "friendReply");
    await d.replyFriend(C, false);
    expect((await declined)[0]).toMatchObject({ user: { uid: D }, accepted: false });
    expect(await d.friendApplications()).toEqual([]);
    expect(await d.friends()).toEqual([]);
    expect(await codeOf(c.sendText(D, "still not friends"))).toBe(ErrorCode.NOT_FRIENDS);
  });

  it("lists conversations with the last message and unread count; history is for participants only", async () => {
    for (const text of ["one", "two", "three"]) await a.sendText(B, text);
    const [conv] = await b.conversations();
    expect(conv).toMatchObject({
      convId: convIdForPair(A, B),
      peerUid: A,
      lastSeq: 3,
      readSeq: 0,
      unread: 3,
      lastMessage: { text: "three", sender: A, seq: 3 },
    });
    const [mine] = await a.conversations();
    expect(mine).toMatchObject({ convId: convIdForPair(A, B), peerUid: B, unread: 0, peerReadSeq: 0 });
    // Paging backwards: the newest two, then the one before them.
    expect((await b.history({ convId: convIdForPair(A, B), limit: 2 })).map((m) => m.text)).toEqual(["two", "three"]);
    expect((await b.history({ convId: convIdForPair(A, B), beforeSeq: 2 })).map((m) => m.text)).toEqual(["one"]);
    const c = await connect(C, DeviceKind.WEB);
    expect(await codeOf(c.history({ convId: convIdForPair(A, B) }))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await codeOf(c.markRead(convIdForPair(A, B), 1))).toBe(ErrorCode.NOT_PARTICIPANT);
  });

  it("keeps one session per device kind: both get messages, each sees what the other sent", async () => {
    bWeb = await connect(B, DeviceKind.WEB, "ws");
    const onDesktop = next(b, "message");
    const onWeb = next(bWeb, "message");
    const sent = await a.sendText(B, "to both devices");
    expect((await onDesktop)[0].msgId).toBe(sent.msgId);
    expect((await onWeb)[0].msgId).toBe(sent.msgId);

    // Read on the desktop: the peer and B's browser are told.
    const receiptAtA = next(a, "readReceipt");
    const receiptAtWeb = next(bWeb, "readReceipt");
    expect(await b.markRead(convIdForPair(A, B), 4)).toBe(4);
    const expected = { convId: convIdForPair(A, B), reader: B, seq: 4 };
    expect((await receiptAtA)[0]).toEqual(expected);
    expect((await receiptAtWeb)[0]).toEqual(expected);
    expect(await b.markRead(convIdForPair(A, B), 2)).toBe(4);
    expect((await a.conversations())[0]?.peerReadSeq).toBe(4);
    expect((await bWeb.conversations())[0]).toMatchObject({ lastSeq: 4, readSeq: 4, unread: 0 });

    // Sent from the desktop: the peer gets it and so does B's browser.
    const atA = next(a, "message");
    const echoed = next(bWeb, "message");
    const reply = await b.sendText(A, "from B's desktop");
    expect((await atA)[0]).toMatchObject({ msgId: reply.msgId, sender: B });
    expect((await echoed)[0]).toMatchObject({ msgId: reply.msgId, sender: B, text: "from B's desktop" });
    expect((await a.conversations())[0]).toMatchObject({ lastSeq: 5, unread: 1 });

    // A second desktop replaces the first; the browser stays. It logs in with the first
    // desktop's token: the browser's newer login did not void it.
    const kicked = next(b, "kicked");
    const b2 = await connect(B, DeviceKind.DESKTOP, "tcp", tokenOf.get(b));
    expect((await kicked)[0]).toMatchObject({ reason: ErrorCode.KICKED });
    const onWebAgain = next(bWeb, "message");
    const onNewDesktop = next(b2, "message");
    const last = await a.sendText(B, "after the kick");
    expect((await onWebAgain)[0].msgId).toBe(last.msgId);
    expect((await onNewDesktop)[0].msgId).toBe(last.msgId);
    b = b2;
  });

  it("tells friends when a user's last device leaves and its first one comes back", async () => {
    const offline = next(a, "presence");
    await bWeb.close();
    await b.close();
    expect((await offline)[0]).toEqual({ uid: B, online: false });
    expect((await a.friends()).map((f) => [f.user?.uid, f.online])).toEqual([[B, false]]);
    const online = next(a, "presence");
    b = await connect(B, DeviceKind.MOBILE);
    expect((await online)[0]).toEqual({ uid: B, online: true });
    expect((await a.friends()).map((f) => [f.user?.uid, f.online])).toEqual([[B, true]]);
  });

  it("removes a friendship on both sides and tells the other side", async () => {
    const removed = next(b, "friendRemoved");
    await a.removeFriend(B);
    expect((await removed)[0]).toEqual({ uid: A });
    expect(await a.friends()).toEqual([]);
    expect(await b.friends()).toEqual([]);
    expect(await codeOf(a.sendText(B, "after unfriending"))).toBe(ErrorCode.NOT_FRIENDS);
    expect(await codeOf(a.removeFriend(B))).toBe(ErrorCode.NOT_FRIENDS);
  });
});

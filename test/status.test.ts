import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { Cluster, Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { type ChatNodeInfo, StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { type Api, grpcClient } from "../src/grpc/api.js";
import { createLogger } from "../src/log/logger.js";
import { TOKENS_PER_USER } from "../src/routing/ports.js";
import { RedisNodeRegistry } from "../src/routing/redis/node-registry.js";
import { RedisTokenStore } from "../src/routing/redis/token-store.js";
import { createRedis } from "../src/routing/redis-client.js";
import { secretDigest } from "../src/routing/secret-digest.js";
import { startStatus } from "../src/status/server.js";
import { createStatusService } from "../src/status/service.js";
import { testConfig } from "./helpers/env.js";
import { ROOT } from "./helpers/processes.js";

type StatusApi = Api<typeof StatusServiceService>;

const log = createLogger("test", "silent");
const UIDS = Array.from({ length: 200 }, (_, i) => String(10_000 + i * 37));

function node(nodeId: string, tcpPort: number): ChatNodeInfo {
  return {
    nodeId,
    host: "127.0.0.1",
    tcpPort,
    wsUrl: `ws://127.0.0.1:${tcpPort + 100}/ws`,
    grpcAddr: `127.0.0.1:${tcpPort + 1000}`,
    weight: 1,
    connections: 0,
  };
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function ownersOf(api: StatusApi, uids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const uid of uids) {
    const reply = await api.getChatNode({ uid });
    expect(reply.error).toBe(ErrorCode.OK);
    out.set(uid, reply.node?.nodeId ?? "");
  }
  return out;
}

describe("status service over gRPC with Redis", () => {
  let redis: Redis | Cluster;
  let base: Config;
  const cleanups: (() => Promise<void> | void)[] = [];

  /** A status server (own gRPC port) on Redis prefix `prefix`, and a client of it. */
  async function statusServerAt(
    prefix: string,
    overrides: Partial<Config> = {},
  ): Promise<{ api: StatusApi; addr: string }> {
    const config = { ...base, ...overrides, REDIS_KEY_PREFIX: prefix, STATUS_ADDR: "127.0.0.1:0" };
    const server = await startStatus({
      config,
      log,
      registry: new RedisNodeRegistry(redis, prefix),
      tokens: new RedisTokenStore(redis, prefix),
    });
    const addr = `127.0.0.1:${server.port}`;
    const client = grpcClient(StatusServiceService, addr);
    cleanups.push(
      () => client.close(),
      () => server.close(),
    );
    return { api: client.api, addr };
  }

  async function statusAt(prefix: string, overrides: Partial<Config> = {}): Promise<StatusApi> {
    return (await statusServerAt(prefix, overrides)).api;
  }

  /** A stand-in node process attached to status at addr (test/helpers/attached-node.ts). */
  async function attachedNode(addr: string, nodeId: string, mode = ""): Promise<ChildProcess> {
    const child = spawn("node", ["--import", "tsx", join(ROOT, "test/helpers/attached-node.ts"), addr, nodeId, mode], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    cleanups.push(() => {
      child.kill("SIGKILL");
    });
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    await eventually(async () => out.includes(mode === "detach" ? "detached" : "attached"), 20_000);
    return child;
  }

  const freshPrefix = () => `${base.REDIS_KEY_PREFIX}${randomBytes(3).toString("hex")}:`;

  it("will not listen beyond loopback without INTERNAL_AUTH_TOKEN, and does with it", async () => {
    const prefix = freshPrefix();
    const start = (token: string) =>
      startStatus({
        config: { ...base, INTERNAL_AUTH_TOKEN: token, REDIS_KEY_PREFIX: prefix, STATUS_ADDR: "0.0.0.0:0" },
        log,
        registry: new RedisNodeRegistry(redis, prefix),
        tokens: new RedisTokenStore(redis, prefix),
      });
    await expect(start("")).rejects.toThrow(/beyond loopback, without INTERNAL_AUTH_TOKEN/);
    const server = await start(randomBytes(16).toString("hex"));
    cleanups.push(() => server.close());
    expect(server.port).toBeGreaterThan(0);
  });

  it("refuses a call without the cluster's INTERNAL_AUTH_TOKEN before it does anything", async () => {
    const secret = randomBytes(16).toString("hex");
    const prefix = freshPrefix();
    const tokens = new RedisTokenStore(redis, prefix);
    const server = await startStatus({
      config: { ...base, INTERNAL_AUTH_TOKEN: secret, REDIS_KEY_PREFIX: prefix, STATUS_ADDR: "127.0.0.1:0" },
      log,
      registry: new RedisNodeRegistry(redis, prefix),
      tokens,
    });
    cleanups.push(() => server.close());
    const issueAs = async (authToken?: string) => {
      const client = grpcClient(StatusServiceService, `127.0.0.1:${server.port}`, { authToken });
      try {
        return await client.api.issueToken({ uid: "4242" });
      } finally {
        client.close();
      }
    };

    // The caller's AppError carries the refusal's own code, as for any refusal over gRPC.
    for (const wrong of [undefined, `${secret}x`, secret.slice(1), "Bearer"]) {
      await expect(issueAs(wrong)).rejects.toMatchObject({
        code: ErrorCode.TOKEN_INVALID,
        message: expect.stringContaining("INTERNAL_AUTH_TOKEN"),
      });
    }
    expect(await tokens.get("4242")).toBeNull();

    const reply = await issueAs(secret);
    expect(reply.error).toBe(ErrorCode.OK);
    // Redis keeps the token's digest only: a dump of it opens no session.
    expect((await tokens.get("4242"))?.token).toBe(secretDigest(reply.token));
    expect((await tokens.get("4242"))?.token).not.toContain(reply.token);
  });

  beforeAll(() => {
    base = testConfig();
    redis = createRedis(base);
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    const keys = await redis.keys(`${base.REDIS_KEY_PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it("answers a registered node, the same one each time for a uid, and uses both nodes", async () => {
    const api = await statusAt(freshPrefix());
    const reg = await api.registerNode({ node: node("chat-a", 9001) });
    expect(reg).toEqual({
      error: ErrorCode.OK,
      heartbeatIntervalMs: base.NODE_HEARTBEAT_INTERVAL_MS,
      nodeTtlMs: base.NODE_TTL_MS,
    });
    expect((await api.registerNode({ node: node("chat-b", 9002) })).error).toBe(ErrorCode.OK);

    const first = await ownersOf(api, UIDS);
    const again = await ownersOf(api, UIDS);
    expect(again).toEqual(first);
    const used = new Set(first.values());
    expect([...used].sort()).toEqual(["chat-a", "chat-b"]);

    const reply = await api.getChatNode({ uid: UIDS[0] as string });
    expect(reply.node).toMatchObject({ host: "127.0.0.1", grpcAddr: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  it("lists live nodes with their heartbeat connection counts", async () => {
    const api = await statusAt(freshPrefix());
    await api.registerNode({ node: node("chat-a", 9001) });
    await api.registerNode({ node: node("chat-b", 9002) });
    expect(await api.heartbeat({ nodeId: "chat-a", connections: 17 })).toEqual({ error: ErrorCode.OK });
    const { nodes } = await api.listNodes({});
    expect(nodes.map((n) => [n.nodeId, n.connections])).toEqual([
      ["chat-a", 17],
      ["chat-b", 0],
    ]);
    expect(await api.heartbeat({ nodeId: "chat-unknown", connections: 1 })).toEqual({ error: ErrorCode.NOT_FOUND });
  });

  it("drops a node whose heartbeats stop and moves its users to the other", async () => {
    const api = await statusAt(freshPrefix(), { NODE_TTL_MS: 1000 });
    // Both nodes heartbeat as real nodes do, re-registering when told to (a busy machine can
    // delay a beat past the TTL); then chat-a stops.
    const beating = new Set(["chat-a", "chat-b"]);
    const ports: Record<string, number> = { "chat-a": 9001, "chat-b": 9002 };
    for (const id of beating) await api.registerNode({ node: node(id, ports[id] as number) });
    const beat = setInterval(async () => {
      for (const id of beating) {
        const reply = await api.heartbeat({ nodeId: id, connections: 0 }).catch(() => undefined);
        if (reply?.error === ErrorCode.NOT_FOUND) await api.registerNode({ node: node(id, ports[id] as number) });
      }
    }, 100);
    cleanups.push(() => clearInterval(beat));
    const before = await ownersOf(api, UIDS);
    const ofA = UIDS.filter((uid) => before.get(uid) === "chat-a");
    expect(ofA.length).toBeGreaterThan(0);
    beating.delete("chat-a");

    await eventually(async () => (await api.getChatNode({ uid: ofA[0] as string })).node?.nodeId === "chat-b");
    const after = await ownersOf(api, UIDS);
    for (const uid of UIDS) expect(after.get(uid)).toBe("chat-b");
    expect((await api.listNodes({})).nodes.map((n) => n.nodeId)).toEqual(["chat-b"]);
    // The dropped node is told to register again.
    expect(await api.heartbeat({ nodeId: "chat-a", connections: 0 })).toEqual({ error: ErrorCode.NOT_FOUND });
  });

  it("removes a leaving node at once", async () => {
    const api = await statusAt(freshPrefix());
    await api.registerNode({ node: node("chat-a", 9001) });
    await api.registerNode({ node: node("chat-b", 9002) });
    const before = await ownersOf(api, UIDS);
    expect(await api.leaveNode({ nodeId: "chat-a" })).toEqual({ error: ErrorCode.OK });
    const after = await ownersOf(api, UIDS);
    for (const uid of UIDS) expect(after.get(uid)).toBe("chat-b");
    expect([...before.values()]).toContain("chat-a");
    expect((await api.listNodes({})).nodes.map((n) => n.nodeId)).toEqual(["chat-b"]);
  });

  it("drops a node whose process dies (its attach stream breaks, its port refuses) long before its TTL", async () => {
    // A TTL far beyond the wait below: only the attach stream can explain the node going.
    const { api, addr } = await statusServerAt(freshPrefix(), { NODE_TTL_MS: 120_000 });
    await api.registerNode({ node: node("chat-b", 9002) });
    const victim = await attachedNode(addr, "chat-a");
    const ids = async () => (await api.listNodes({})).nodes.map((n) => n.nodeId);
    expect(await ids()).toEqual(["chat-a", "chat-b"]);
    victim.kill("SIGKILL");
    await eventually(async () => (await ids()).join() === "chat-b", 10_000);
    for (const uid of UIDS.slice(0, 20)) expect((await api.getChatNode({ uid })).node?.nodeId).toBe("chat-b");
  }, 40_000);

  it("keeps a node whose attach stream breaks while its port still answers (left to its heartbeats)", async () => {
    const { api, addr } = await statusServerAt(freshPrefix(), { NODE_TTL_MS: 120_000, NODE_PROBE_TIMEOUT_MS: 500 });
    await attachedNode(addr, "chat-a", "detach");
    // Past the probe: had status taken the broken stream for a death, the node would be gone.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await api.listNodes({})).nodes.map((n) => n.nodeId)).toEqual(["chat-a"]);
  }, 40_000);

  it("gives the same owners from a second status instance on the same Redis", async () => {
    const prefix = freshPrefix();
    const one = await statusAt(prefix);
    const two = await statusAt(prefix);
    for (const [id, port] of [
      ["chat-a", 9001],
      ["chat-b", 9002],
      ["chat-c", 9003],
    ] as const) {
      await one.registerNode({ node: node(id, port) });
    }
    const fromOne = await ownersOf(one, UIDS);
    expect(await ownersOf(two, UIDS)).toEqual(fromOne);
    expect(new Set(fromOne.values()).size).toBe(3);
    // A token issued by one is accepted by the other.
    const { token } = await one.issueToken({ uid: "77" });
    expect(await two.checkToken({ uid: "77", token })).toMatchObject({ error: ErrorCode.OK });
  });

  it("binds a token to the device kind it was issued for, one token per kind", async () => {
    const api = await statusAt(freshPrefix());
    const web = await api.issueToken({ uid: "2001", device: "web" });
    const desktop = await api.issueToken({ uid: "2001", device: "desktop" });
    const any = await api.issueToken({ uid: "2001" });
    expect(await api.checkToken({ uid: "2001", token: web.token, device: "web" })).toMatchObject({
      error: ErrorCode.OK,
    });
    // Stolen and presented as another kind: refused.
    expect(await api.checkToken({ uid: "2001", token: web.token, device: "desktop" })).toMatchObject({
      error: ErrorCode.TOKEN_INVALID,
    });
    expect(await api.checkToken({ uid: "2001", token: desktop.token, device: "desktop" })).toMatchObject({
      error: ErrorCode.OK,
    });
    // Requests that are not a session (gate's file routes) name no device; unbound tokens open any kind.
    expect(await api.checkToken({ uid: "2001", token: web.token })).toMatchObject({ error: ErrorCode.OK });
    expect(await api.checkToken({ uid: "2001", token: any.token, device: "mobile" })).toMatchObject({
      error: ErrorCode.OK,
    });
    // Logging in again on the web replaces the web token and keeps the desktop one.
    const web2 = await api.issueToken({ uid: "2001", device: "web" });
    expect(await api.checkToken({ uid: "2001", token: web.token, device: "web" })).toMatchObject({
      error: ErrorCode.TOKEN_INVALID,
    });
    expect(await api.checkToken({ uid: "2001", token: web2.token, device: "web" })).toMatchObject({
      error: ErrorCode.OK,
    });
    expect(await api.checkToken({ uid: "2001", token: desktop.token, device: "desktop" })).toMatchObject({
      error: ErrorCode.OK,
    });
    expect((await api.issueToken({ uid: "2001", device: "tv" })).error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await api.checkToken({ uid: "2001", token: web2.token, device: "tv" })).error).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
  });

  it("answers NO_CHAT_NODE without live nodes", async () => {
    const api = await statusAt(freshPrefix());
    expect(await api.getChatNode({ uid: "42" })).toEqual({ error: ErrorCode.NO_CHAT_NODE, node: undefined });
    await api.registerNode({ node: node("chat-a", 9001) });
    await api.leaveNode({ nodeId: "chat-a" });
    expect((await api.getChatNode({ uid: "42" })).error).toBe(ErrorCode.NO_CHAT_NODE);
  });

  it("issues tokens and checks them", async () => {
    const api = await statusAt(freshPrefix());
    const before = Date.now();
    const issued = await api.issueToken({ uid: "1001" });
    expect(issued.error).toBe(ErrorCode.OK);
    expect(issued.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const expiresAt = Number(issued.expiresAtMs);
    expect(expiresAt).toBeGreaterThanOrEqual(before + base.TOKEN_TTL_SECONDS * 1000);

    // An accepted token comes with its expiry (a session it opens ends then); a refusal with none.
    expect(await api.checkToken({ uid: "1001", token: issued.token })).toEqual({
      error: ErrorCode.OK,
      expiresAtMs: issued.expiresAtMs,
    });
    const oneCharOff = issued.token.slice(0, -1) + (issued.token.endsWith("a") ? "b" : "a");
    expect(await api.checkToken({ uid: "1001", token: oneCharOff })).toEqual({
      error: ErrorCode.TOKEN_INVALID,
      expiresAtMs: "0",
    });
    expect(await api.checkToken({ uid: "1001", token: "short" })).toMatchObject({ error: ErrorCode.TOKEN_INVALID });
    expect(await api.checkToken({ uid: "1001", token: "" })).toMatchObject({ error: ErrorCode.TOKEN_INVALID });
    expect(await api.checkToken({ uid: "1002", token: issued.token })).toMatchObject({
      error: ErrorCode.TOKEN_INVALID,
    });

    // A new login (another device) keeps the older token valid; TOKENS_PER_USER newer logins void it.
    const newer = await api.issueToken({ uid: "1001" });
    expect(newer.token).not.toBe(issued.token);
    expect(await api.checkToken({ uid: "1001", token: issued.token })).toMatchObject({ error: ErrorCode.OK });
    expect(await api.checkToken({ uid: "1001", token: newer.token })).toMatchObject({ error: ErrorCode.OK });
    for (let i = 1; i < TOKENS_PER_USER; i++) await api.issueToken({ uid: "1001" });
    expect(await api.checkToken({ uid: "1001", token: issued.token })).toMatchObject({
      error: ErrorCode.TOKEN_INVALID,
    });
    expect(await api.checkToken({ uid: "1001", token: newer.token })).toMatchObject({ error: ErrorCode.OK });
  });

  it("tells an expired token from a wrong one", async () => {
    const api = await statusAt(freshPrefix(), { TOKEN_TTL_SECONDS: 1 });
    const { token } = await api.issueToken({ uid: "2001" });
    expect(await api.checkToken({ uid: "2001", token })).toMatchObject({ error: ErrorCode.OK });
    await new Promise((r) => setTimeout(r, 1200));
    expect(await api.checkToken({ uid: "2001", token })).toMatchObject({ error: ErrorCode.TOKEN_EXPIRED });
    expect(await api.checkToken({ uid: "2001", token: "x".repeat(32) })).toMatchObject({
      error: ErrorCode.TOKEN_INVALID,
    });
  });

  it("rejects bad uids and bad node registrations with INVALID_ARGUMENT", async () => {
    const api = await statusAt(freshPrefix());
    await api.registerNode({ node: node("chat-a", 9001) });
    // uid 0 is all the wire can carry that is not a real uid.
    expect((await api.getChatNode({ uid: "0" })).error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await api.issueToken({ uid: "0" })).error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await api.checkToken({ uid: "0", token: "t" })).error).toBe(ErrorCode.INVALID_ARGUMENT);

    const bad: (ChatNodeInfo | undefined)[] = [
      undefined,
      { ...node("chat-x", 9001), nodeId: "" },
      { ...node("chat-x", 9001), nodeId: "has space" },
      { ...node("chat-x", 9001), host: "" },
      { ...node("chat-x", 9001), tcpPort: 0 },
      { ...node("chat-x", 9001), grpcAddr: "no-port" },
    ];
    for (const n of bad) {
      expect((await api.registerNode({ node: n })).error).toBe(ErrorCode.INVALID_ARGUMENT);
    }
    expect((await api.listNodes({})).nodes.map((n) => n.nodeId)).toEqual(["chat-a"]);
  });

  it("rejects uids that are not canonical decimals when called in-process", async () => {
    const prefix = freshPrefix();
    const api = createStatusService({
      registry: new RedisNodeRegistry(redis, prefix),
      tokens: new RedisTokenStore(redis, prefix),
      config: base,
      log,
    });
    await api.registerNode({ node: node("chat-a", 9001) });
    for (const uid of ["", "0", "abc", "-1", "01", "1.5", " 1", "18446744073709551616"]) {
      expect((await api.getChatNode({ uid })).error).toBe(ErrorCode.INVALID_ARGUMENT);
      expect((await api.issueToken({ uid })).error).toBe(ErrorCode.INVALID_ARGUMENT);
    }
    expect((await api.getChatNode({ uid: "18446744073709551615" })).error).toBe(ErrorCode.OK);
  });
});

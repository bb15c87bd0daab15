import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import type { ChatNodeInfo } from "../src/gen/shardchat/v1/status.js";
import { MemoryWorkerIdLeases } from "../src/ids/memory-worker-leases.js";
import { MAX_WORKER_ID } from "../src/ids/snowflake.js";
import { RedisWorkerIdLeases, type WorkerIdLeases } from "../src/ids/worker-leases.js";
import { MemoryNodeRegistry } from "../src/routing/memory/node-registry.js";
import { MemoryRateLimiter } from "../src/routing/memory/rate-limiter.js";
import { MemoryTokenStore } from "../src/routing/memory/token-store.js";
import { MemoryVerifyCodeStore } from "../src/routing/memory/verify-code-store.js";
import {
  type NodeRegistry,
  type RateLimiter,
  TOKENS_PER_USER,
  type TokenStore,
  type VerifyCodeStore,
} from "../src/routing/ports.js";
import { RedisNodeRegistry } from "../src/routing/redis/node-registry.js";
import { RedisRateLimiter } from "../src/routing/redis/rate-limiter.js";
import { RedisTokenStore } from "../src/routing/redis/token-store.js";
import { RedisVerifyCodeStore } from "../src/routing/redis/verify-code-store.js";
import { createRedis, type RedisClient } from "../src/routing/redis-client.js";
import { testConfig } from "./helpers/env.js";

/**
 * The routing ports' shared behaviour, on Redis and on the in-memory adapters of the embedded
 * default. Expiry is real time with short TTLs (Redis keeps its own clock), awaited by polling.
 */
interface Backend {
  name: string;
  nodes(): NodeRegistry;
  tokens(graceMs: number): TokenStore;
  codes(graceMs: number): VerifyCodeStore;
  limiter(): RateLimiter;
  leases(ttlMs: number): WorkerIdLeases;
}

let config: Config;
let redis: RedisClient;
let prefixes = 0;
/** Each store gets its own key space, like each memory instance has its own state. */
const freshPrefix = () => `${config.REDIS_KEY_PREFIX}${++prefixes}:`;

const backends: Backend[] = [
  {
    name: "redis",
    nodes: () => new RedisNodeRegistry(redis, freshPrefix()),
    tokens: (graceMs) => new RedisTokenStore(redis, freshPrefix(), graceMs),
    codes: (graceMs) => new RedisVerifyCodeStore(redis, freshPrefix(), graceMs),
    limiter: () => new RedisRateLimiter(redis, freshPrefix()),
    leases: (ttlMs) => new RedisWorkerIdLeases(redis, freshPrefix(), ttlMs),
  },
  {
    name: "memory",
    nodes: () => new MemoryNodeRegistry(),
    tokens: (graceMs) => new MemoryTokenStore(graceMs),
    codes: (graceMs) => new MemoryVerifyCodeStore(graceMs),
    limiter: () => new MemoryRateLimiter(),
    leases: (ttlMs) => new MemoryWorkerIdLeases(ttlMs),
  },
];

beforeAll(() => {
  config = testConfig();
  redis = createRedis(config);
});

afterAll(async () => {
  const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not reached in time: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function node(nodeId: string, tcpPort: number): ChatNodeInfo {
  return {
    nodeId,
    host: "127.0.0.1",
    tcpPort,
    wsUrl: `ws://127.0.0.1:${tcpPort + 100}/`,
    grpcAddr: `127.0.0.1:${tcpPort + 1000}`,
    weight: 1,
    connections: 3,
  };
}

describe.each(backends)("routing ports on $name", (backend) => {
  describe("NodeRegistry", () => {
    it("lists upserted nodes with their info, refreshes and removes them", async () => {
      const registry = backend.nodes();
      expect(await registry.live()).toEqual([]);
      await registry.upsert(node("chat-1", 9001), 60_000);
      await registry.upsert(node("chat-2", 9002), 60_000);
      const byId = (nodes: ChatNodeInfo[]) => [...nodes].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
      expect(byId(await registry.live())).toEqual([node("chat-1", 9001), node("chat-2", 9002)]);

      await registry.upsert({ ...node("chat-1", 9001), connections: 42 }, 60_000);
      expect((await registry.live()).find((n) => n.nodeId === "chat-1")?.connections).toBe(42);

      await registry.remove("chat-2");
      await registry.remove("never-there");
      expect((await registry.live()).map((n) => n.nodeId)).toEqual(["chat-1"]);
    });

    it("drops a node ttl after its last upsert, while a refreshed one stays", async () => {
      const registry = backend.nodes();
      await registry.upsert(node("short", 9003), 150);
      await registry.upsert(node("long", 9004), 60_000);
      await eventually("the short-lived node leaves", async () =>
        (await registry.live()).every((n) => n.nodeId !== "short"),
      );
      expect((await registry.live()).map((n) => n.nodeId)).toEqual(["long"]);
      // Coming back after expiry is a plain upsert.
      await registry.upsert(node("short", 9003), 60_000);
      expect((await registry.live()).map((n) => n.nodeId).sort()).toEqual(["long", "short"]);
    });
  });

  describe("TokenStore", () => {
    it("revokes one token by value, or all of a user's, and answers those it removed", async () => {
      const tokens = backend.tokens(60_000);
      const expiresAtMs = Date.now() + 60_000;
      await tokens.put("31", { token: "w", expiresAtMs, device: "web" });
      await tokens.put("31", { token: "d", expiresAtMs, device: "desktop" });
      await tokens.put("31", { token: "m", expiresAtMs, device: "mobile" });
      expect(await tokens.revoke("31", "nope")).toEqual([]);
      expect(await tokens.revoke("31", "d")).toEqual([{ token: "d", expiresAtMs, device: "desktop" }]);
      expect((await tokens.recent("31")).map((t) => t.token)).toEqual(["m", "w"]);
      expect((await tokens.revoke("31", undefined)).map((t) => t.token).sort()).toEqual(["m", "w"]);
      expect(await tokens.recent("31")).toEqual([]);
      expect(await tokens.revoke("31", undefined)).toEqual([]);
      // A token issued after the revocation counts as usual.
      await tokens.put("31", { token: "again", expiresAtMs });
      expect((await tokens.get("31"))?.token).toBe("again");
    });

    it("answers the newest token per uid, and none for others", async () => {
      const tokens = backend.tokens(60_000);
      const expiresAtMs = Date.now() + 60_000;
      await tokens.put("11", { token: "first", expiresAtMs });
      await tokens.put("11", { token: "second", expiresAtMs: expiresAtMs + 1 });
      expect(await tokens.get("11")).toEqual({ token: "second", expiresAtMs: expiresAtMs + 1 });
      expect(await tokens.get("12")).toBeNull();
      expect(await tokens.recent("12")).toEqual([]);
    });

    it("keeps a token's device kind, and one token per kind: a new one of that kind replaces it", async () => {
      const tokens = backend.tokens(60_000);
      const expiresAtMs = Date.now() + 60_000;
      await tokens.put("13", { token: "web-1", expiresAtMs, device: "web" });
      await tokens.put("13", { token: "desk", expiresAtMs, device: "desktop" });
      await tokens.put("13", { token: "web-2", expiresAtMs, device: "web" });
      expect(await tokens.recent("13")).toEqual([
        { token: "web-2", expiresAtMs, device: "web" },
        { token: "desk", expiresAtMs, device: "desktop" },
      ]);
    });

    it("keeps the newest TOKENS_PER_USER tokens (one per device kind), newest first", async () => {
      const tokens = backend.tokens(60_000);
      const expiresAtMs = Date.now() + 60_000;
      const names = ["t0", "t1", "t2", "t3", "t4"].slice(0, TOKENS_PER_USER + 1);
      for (const [i, token] of names.entries()) await tokens.put("13", { token, expiresAtMs: expiresAtMs + i });
      const kept = await tokens.recent("13");
      expect(kept.map((t) => t.token)).toEqual(names.slice(1).reverse());
      expect(kept[0]).toEqual({ token: names.at(-1), expiresAtMs: expiresAtMs + names.length - 1 });
    });

    it("still answers an expired token during the grace, then forgets it", async () => {
      const tokens = backend.tokens(200);
      const expiresAtMs = Date.now() - 1;
      await tokens.put("21", { token: "old", expiresAtMs });
      expect(await tokens.get("21")).toEqual({ token: "old", expiresAtMs });
      await eventually("the expired token is forgotten", async () => (await tokens.get("21")) === null);
    });
  });

  describe("VerifyCodeStore", () => {
    it("answers the stored code and consumes it once, only with the right code", async () => {
      const codes = backend.codes(60_000);
      const expiresAtMs = Date.now() + 60_000;
      await codes.put("a@example.com", { code: "123456", expiresAtMs });
      expect(await codes.get("a@example.com")).toEqual({ code: "123456", expiresAtMs });
      expect(await codes.get("b@example.com")).toBeNull();

      expect(await codes.consume("a@example.com", "654321")).toBe(false);
      expect(await codes.get("a@example.com")).not.toBeNull();
      const racing = await Promise.all(Array.from({ length: 5 }, () => codes.consume("a@example.com", "123456")));
      expect(racing.filter(Boolean)).toHaveLength(1);
      expect(await codes.get("a@example.com")).toBeNull();
      expect(await codes.consume("nobody@example.com", "123456")).toBe(false);
    });

    it("counts each wrong guess in the same step as the comparison and removes the code at the limit", async () => {
      const codes = backend.codes(60_000);
      const now = Date.now();
      const guess = (code: string, consume = true, nowMs = now) =>
        codes.attempt("g@example.com", code, { maxAttempts: 3, consume, nowMs });
      expect(await guess("123456")).toBe("none");
      await codes.put("g@example.com", { code: "123456", expiresAtMs: now + 60_000 });
      expect(await guess("000000")).toBe("wrong");
      expect(await guess("123456", false)).toBe("ok");
      expect(await guess("123456", true, now + 61_000)).toBe("expired");
      expect(await guess("000001")).toBe("wrong");
      expect(await codes.get("g@example.com")).not.toBeNull();
      // The third wrong guess is the last: the code is gone, the right one finds nothing.
      expect(await guess("000002")).toBe("wrong");
      expect(await guess("123456")).toBe("none");

      // Many at once: no more than maxAttempts wrong ones are compared before the code is gone.
      await codes.put("g@example.com", { code: "123456", expiresAtMs: now + 60_000 });
      const wrongs = Array.from({ length: 20 }, (_, i) => guess(String(100_000 + i)));
      const outcomes = await Promise.all([...wrongs, guess("123456")]);
      expect(outcomes.filter((o) => o === "wrong")).toHaveLength(3);
      expect(outcomes.at(-1)).toBe("none");

      // A new code starts with no guesses counted; the right guess consumes it.
      await codes.put("g@example.com", { code: "654321", expiresAtMs: now + 60_000 });
      expect(await guess("000000")).toBe("wrong");
      expect(await guess("654321")).toBe("ok");
      expect(await guess("654321")).toBe("none");
    });

    it("a new code replaces the old one; an expired code is kept only for the grace", async () => {
      const codes = backend.codes(200);
      await codes.put("c@example.com", { code: "111111", expiresAtMs: Date.now() + 60_000 });
      await codes.put("c@example.com", { code: "222222", expiresAtMs: Date.now() - 1 });
      expect(await codes.consume("c@example.com", "111111")).toBe(false);
      expect((await codes.get("c@example.com"))?.code).toBe("222222");
      await eventually("the expired code is forgotten", async () => (await codes.get("c@example.com")) === null);
    });
  });

  describe("RateLimiter", () => {
    it("reset gives a refused key its window back", async () => {
      const limiter = backend.limiter();
      expect((await limiter.hit("r", 1, 60)).allowed).toBe(true);
      expect((await limiter.hit("r", 1, 60)).allowed).toBe(false);
      await limiter.reset("r");
      expect((await limiter.hit("r", 1, 60)).allowed).toBe(true);
      expect((await limiter.hit("r", 1, 60)).allowed).toBe(false);
      await limiter.reset("never-hit");
    });

    it("allows limit hits per window, tells how long to wait, and counts keys apart", async () => {
      const limiter = backend.limiter();
      for (let i = 0; i < 3; i++)
        expect(await limiter.hit("k", 3, 60)).toEqual({ allowed: true, retryAfterSeconds: 0 });
      const refused = await limiter.hit("k", 3, 60);
      expect(refused.allowed).toBe(false);
      expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
      expect((await limiter.hit("other", 3, 60)).allowed).toBe(true);
    });

    it("counts a weighted hit as that many; one that does not fit is refused and spends nothing", async () => {
      const limiter = backend.limiter();
      expect((await limiter.hit("weighted", 5, 60, 3)).allowed).toBe(true);
      const refused = await limiter.hit("weighted", 5, 60, 3);
      expect(refused.allowed).toBe(false);
      expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      // What the refused hit asked for was given back: 2 still fit, then nothing.
      expect((await limiter.hit("weighted", 5, 60, 2)).allowed).toBe(true);
      expect((await limiter.hit("weighted", 5, 60)).allowed).toBe(false);
      // The first weighted hit starts the window (a key that expires).
      expect((await limiter.hit("first-weighted", 5, 1, 4)).allowed).toBe(true);
      await eventually("the weighted window ends", async () => (await limiter.hit("first-weighted", 5, 1, 4)).allowed);
    });

    it("starts a new window once the old one ends", async () => {
      const limiter = backend.limiter();
      expect((await limiter.hit("w", 1, 1)).allowed).toBe(true);
      expect(await limiter.hit("w", 1, 1)).toEqual({ allowed: false, retryAfterSeconds: 1 });
      await eventually("the window ends", async () => (await limiter.hit("probe-free", 1, 1)).allowed);
      await eventually("w is allowed again", async () => (await limiter.hit("w", 1, 1)).allowed);
    });
  });

  describe("WorkerIdLeases", () => {
    it("never gives one id to two holders; renew and release only by the holder", async () => {
      const leases = backend.leases(60_000);
      const ids = await Promise.all(Array.from({ length: MAX_WORKER_ID + 1 }, (_, i) => leases.acquire(`o${i}`)));
      expect(new Set(ids).size).toBe(MAX_WORKER_ID + 1);
      await expect(leases.acquire("one-too-many")).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });

      const first = ids[0] as number;
      expect(await leases.renew(first, "o0")).toBe(true);
      expect(await leases.renew(first, "o1")).toBe(false);
      await leases.release(first, "not-the-owner");
      await expect(leases.acquire("still-full")).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
      await leases.release(first, "o0");
      expect(await leases.acquire("newcomer")).toBe(first);
      expect(await leases.renew(first, "o0")).toBe(false);
    });

    it("frees an id whose lease was not renewed in time", async () => {
      const leases = backend.leases(150);
      const id = await leases.acquire("sleepy");
      expect(leases.ttlMs).toBe(150);
      // Asking would renew it: wait well past the TTL without a word.
      await new Promise((r) => setTimeout(r, 600));
      // Expired: the old holder cannot renew what may now be someone else's.
      expect(await leases.renew(id, "sleepy")).toBe(false);
    });
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { uidOf } from "../src/ids/identifiers.js";
import { MemorySessionRoutes } from "../src/routing/memory/session-routes.js";
import type { SessionRoute, SessionRoutes } from "../src/routing/ports.js";
import { RedisSessionRoutes } from "../src/routing/redis/session-routes.js";
import { createRedis, type RedisClient } from "../src/routing/redis-client.js";
import type { Uid } from "../src/storage/ports.js";
import { testConfig } from "./helpers/env.js";

type Routes = SessionRoutes & { refresh(uid: Uid, route: SessionRoute): Promise<boolean> };

interface Backend {
  name: string;
  setUp(): Promise<void> | void;
  tearDown(): Promise<void> | void;
  /** Routes that never expire (ttl 0), as the chat node's default off Redis TTL. */
  routes(): Routes;
}

let config: Config;
let redis: RedisClient;

const backends: Backend[] = [
  {
    name: "redis",
    setUp() {
      config = testConfig();
      redis = createRedis(config);
    },
    async tearDown() {
      const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
    routes: () => new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX),
  },
  {
    name: "memory",
    setUp() {},
    tearDown() {},
    routes: () => new MemorySessionRoutes(),
  },
];

describe.each(backends)("SessionRoutes on $name", (backend) => {
  let routes: Routes;

  beforeAll(async () => {
    await backend.setUp();
    routes = backend.routes();
  });

  afterAll(async () => {
    await backend.tearDown();
  });

  it("keeps one route per device kind: another kind stays beside, the same kind replaces", async () => {
    const desktop: SessionRoute = { nodeId: "chat-1", sessionId: "d1", device: "desktop" };
    const web: SessionRoute = { nodeId: "chat-2", sessionId: "w1", device: "web" };
    expect(await routes.bind("111", desktop)).toBeNull();
    expect(await routes.bind("111", web)).toBeNull();
    expect((await routes.lookupAll(["111", "112"])).get("111")).toEqual([desktop, web]);
    expect((await routes.lookupAll(["112"])).size).toBe(0);
    const desktop2: SessionRoute = { nodeId: "chat-1", sessionId: "d2", device: "desktop" };
    expect(await routes.bind("111", desktop2)).toEqual(desktop);
    expect((await routes.lookupAll(["111"])).get("111")).toEqual([desktop2, web]);
    // A replaced session's heartbeat is refused; the other kind's is not.
    expect(await routes.refresh("111", desktop)).toBe(false);
    expect(await routes.refresh("111", web)).toBe(true);
    // Unbinding the old desktop session touches nothing; the web one goes, the desktop stays.
    await routes.unbind("111", "d1");
    await routes.unbind("111", "w1", "web");
    expect((await routes.lookupAll(["111"])).get("111")).toEqual([desktop2]);
    expect((await routes.lookup(["111"])).get("111")).toEqual(desktop2);
    await routes.unbind("111", "d2");
    expect((await routes.lookupAll(["111"])).size).toBe(0);
  });

  it("bind answers the route it replaced", async () => {
    const first = { nodeId: "chat-1", sessionId: "s1" };
    const second = { nodeId: "chat-2", sessionId: "s2" };
    expect(await routes.bind("101", first)).toBeNull();
    expect(await routes.bind("101", second)).toEqual(first);
    expect((await routes.lookup(["101"])).get("101")).toEqual(second);
  });

  it("unbind of a stale session leaves the newer route; unbind of the current one removes it", async () => {
    await routes.bind("202", { nodeId: "chat-1", sessionId: "old" });
    await routes.bind("202", { nodeId: "chat-2", sessionId: "new" });
    await routes.unbind("202", "old");
    expect((await routes.lookup(["202"])).get("202")).toEqual({ nodeId: "chat-2", sessionId: "new" });
    await routes.unbind("202", "new");
    expect((await routes.lookup(["202"])).has("202")).toBe(false);
  });

  it("looks up many uids at once and leaves out the ones without a route", async () => {
    const uids = Array.from({ length: 50 }, (_, i) => uidOf(3000 + i));
    for (const uid of uids.filter((_, i) => i % 3 === 0)) {
      await routes.bind(uid, { nodeId: `chat-${Number(uid) % 4}`, sessionId: `s-${uid}` });
    }
    const found = await routes.lookup([...uids, "3000"]);
    expect([...found.keys()].sort()).toEqual(uids.filter((_, i) => i % 3 === 0).sort());
    expect(found.get("3003")).toEqual({ nodeId: "chat-3", sessionId: "s-3003" });
    expect((await routes.lookup([])).size).toBe(0);
  });

  it("refresh keeps its own route, writes back a vanished one, and tells a replaced session", async () => {
    const mine = { nodeId: "chat-1", sessionId: "mine" };
    await routes.bind("707", mine);
    expect(await routes.refresh("707", mine)).toBe(true);
    expect((await routes.lookup(["707"])).get("707")).toEqual(mine);

    await routes.unbind("707", "mine");
    expect(await routes.refresh("707", mine)).toBe(true);
    expect((await routes.lookup(["707"])).get("707")).toEqual(mine);

    const newer = { nodeId: "chat-2", sessionId: "newer" };
    expect(await routes.bind("707", newer)).toEqual(mine);
    expect(await routes.refresh("707", mine)).toBe(false);
    expect((await routes.lookup(["707"])).get("707")).toEqual(newer);
  });

  it("hands out copies: changing an answered route changes nothing stored", async () => {
    const route = { nodeId: "chat-1", sessionId: "copy" };
    await routes.bind("808", route);
    route.nodeId = "changed";
    const found = (await routes.lookup(["808"])).get("808");
    expect(found).toEqual({ nodeId: "chat-1", sessionId: "copy" });
    if (found) found.sessionId = "changed too";
    expect((await routes.lookup(["808"])).get("808")).toEqual({ nodeId: "chat-1", sessionId: "copy" });
  });
});

describe("RedisSessionRoutes", () => {
  let routes: RedisSessionRoutes;

  beforeAll(() => {
    config = testConfig();
    redis = createRedis(config);
    routes = new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it("keeps every key under the configured prefix", async () => {
    await routes.bind("404", { nodeId: "chat-1", sessionId: "p" });
    expect(await redis.exists(`${config.REDIS_KEY_PREFIX}route:404`)).toBe(1);
  });

  it("treats a corrupt stored value as no route", async () => {
    await redis.set(`${config.REDIS_KEY_PREFIX}route:505`, "not json");
    expect((await routes.lookup(["505"])).has("505")).toBe(false);
    expect(await routes.bind("505", { nodeId: "chat-1", sessionId: "fresh" })).toBeNull();
  });

  it("with a TTL, routes expire unless refreshed, and refresh tells a replaced session", async () => {
    const expiring = new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 60);
    const mine = { nodeId: "chat-1", sessionId: "mine" };
    const key = `${config.REDIS_KEY_PREFIX}route:606`;
    await expiring.bind("606", mine);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);

    await redis.expire(key, 5);
    expect(await expiring.refresh("606", mine)).toBe(true);
    expect(await redis.ttl(key)).toBeGreaterThan(5);

    // A route that vanished (expired during a stall) is written back by its live session.
    await redis.del(key);
    expect(await expiring.refresh("606", mine)).toBe(true);
    expect((await expiring.lookup(["606"])).get("606")).toEqual(mine);

    const newer = { nodeId: "chat-2", sessionId: "newer" };
    await expiring.bind("606", newer);
    expect(await expiring.refresh("606", mine)).toBe(false);
    expect((await expiring.lookup(["606"])).get("606")).toEqual(newer);
  });
});

describe("MemorySessionRoutes", () => {
  it("with a TTL, routes expire unless refreshed; without one they stay", async () => {
    let now = 1_000_000;
    const expiring = new MemorySessionRoutes(60, () => now);
    const mine = { nodeId: "chat-1", sessionId: "mine" };
    await expiring.bind("606", mine);

    now += 59_000;
    expect((await expiring.lookup(["606"])).get("606")).toEqual(mine);
    expect(await expiring.refresh("606", mine)).toBe(true);
    now += 59_000;
    expect((await expiring.lookup(["606"])).get("606")).toEqual(mine);

    now += 1_000;
    expect((await expiring.lookup(["606"])).has("606")).toBe(false);
    // An expired route is no route: binding over it replaces nothing.
    expect(await expiring.bind("606", { nodeId: "chat-2", sessionId: "later" })).toBeNull();

    const forever = new MemorySessionRoutes(0, () => now);
    await forever.bind("707", mine);
    now += 365 * 24 * 3600 * 1000;
    expect((await forever.lookup(["707"])).get("707")).toEqual(mine);
  });

  it("keeps its state per instance: two stacks in one process do not share routes", async () => {
    const one = new MemorySessionRoutes();
    const two = new MemorySessionRoutes();
    await one.bind("909", { nodeId: "chat-1", sessionId: "a" });
    expect((await two.lookup(["909"])).size).toBe(0);
  });
});

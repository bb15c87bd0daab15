import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uidOf } from "../../src/ids/identifiers.js";
import { RedisWorkerIdLeases } from "../../src/ids/worker-leases.js";
import { RedisNodeRegistry } from "../../src/routing/redis/node-registry.js";
import { RedisRateLimiter } from "../../src/routing/redis/rate-limiter.js";
import { RedisSessionRoutes } from "../../src/routing/redis/session-routes.js";
import { RedisTokenStore } from "../../src/routing/redis/token-store.js";
import { RedisVerifyCodeStore } from "../../src/routing/redis/verify-code-store.js";
import { createRedis } from "../../src/routing/redis-client.js";
import { testConfig } from "../helpers/env.js";
import { ROOT, waitFor } from "../helpers/processes.js";
import { restoreKilledRedisMaster, type StackEnv, stackInfraUp } from "../helpers/stack.js";

// The Redis adapters on the stack's 6-node Redis Cluster (3 masters, 3 replicas).
let stack: StackEnv;
let cluster: Cluster;
let prefix: string;

beforeAll(async () => {
  stack = await stackInfraUp();
  const config = testConfig({ REDIS_CLUSTER_NODES: stack.redisNodes });
  prefix = config.REDIS_KEY_PREFIX;
  cluster = createRedis(config) as Cluster;
  expect(cluster).toBeInstanceOf(Cluster);
}, 300_000);

afterAll(async () => {
  await cluster?.quit().catch(() => cluster.disconnect());
  // Leave the cluster whole for the next run, whatever happened above.
  await promisify(execFile)("bash", [join(ROOT, "ops/stack/up.sh"), "--infra"], { timeout: 120_000 });
}, 180_000);

/** The port of the master serving key's slot, from CLUSTER SLOTS. */
async function masterPortOf(key: string): Promise<number> {
  const slot = Number(await cluster.call("CLUSTER", "KEYSLOT", key));
  const ranges = (await cluster.call("CLUSTER", "SLOTS")) as [number, number, [string, number, string]][];
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  if (!range) throw new Error(`no master serves slot ${slot}`);
  return Number(range[2][1]);
}

const node = (nodeId: string) => ({
  nodeId,
  host: "127.0.0.1",
  tcpPort: 1,
  wsUrl: "ws://127.0.0.1:2/",
  grpcAddr: "127.0.0.1:3",
  weight: 1,
  connections: 0,
});

describe("Redis adapters on a Redis Cluster", () => {
  it("spreads per-uid keys over several masters while each adapter works as on one Redis", async () => {
    const routes = new RedisSessionRoutes(cluster, prefix, 60);
    const uids = Array.from({ length: 40 }, (_, i) => uidOf(1000 + i));
    for (const uid of uids) expect(await routes.bind(uid, { nodeId: "chat-1", sessionId: `s${uid}` })).toBeNull();
    const masters = new Set(await Promise.all(uids.map((uid) => masterPortOf(`${prefix}route:${uid}`))));
    expect(masters.size).toBeGreaterThan(1);
    const found = await routes.lookup([...uids, "999"]);
    expect(found.size).toBe(40);
    expect(await routes.refresh("1000", { nodeId: "chat-1", sessionId: "s1000" })).toBe(true);
    expect(await routes.refresh("1000", { nodeId: "chat-1", sessionId: "other" })).toBe(false);
    await routes.unbind("1000", "s1000");
    expect((await routes.lookup(["1000"])).size).toBe(0);

    // Both node-registry keys carry the {nodes} hash tag: its Lua scripts touch one slot.
    const registry = new RedisNodeRegistry(cluster, prefix);
    await registry.upsert(node("chat-a"), 60_000);
    await registry.upsert(node("chat-b"), 60_000);
    expect((await registry.live()).map((n) => n.nodeId).sort()).toEqual(["chat-a", "chat-b"]);
    await registry.remove("chat-a");
    expect((await registry.live()).map((n) => n.nodeId)).toEqual(["chat-b"]);

    const tokens = new RedisTokenStore(cluster, prefix);
    await tokens.put("7", { token: "t7", expiresAtMs: Date.now() + 60_000 });
    expect((await tokens.get("7"))?.token).toBe("t7");

    const codes = new RedisVerifyCodeStore(cluster, prefix);
    await codes.put("a@example.com", { code: "123456", expiresAtMs: Date.now() + 60_000 });
    expect(await codes.consume("a@example.com", "000000")).toBe(false);
    expect(await codes.consume("a@example.com", "123456")).toBe(true);
    expect(await codes.get("a@example.com")).toBeNull();

    const limiter = new RedisRateLimiter(cluster, prefix);
    expect((await limiter.hit("ip:1", 2, 60)).allowed).toBe(true);
    expect((await limiter.hit("ip:1", 2, 60)).allowed).toBe(true);
    expect(await limiter.hit("ip:1", 2, 60)).toMatchObject({ allowed: false });

    const leases = new RedisWorkerIdLeases(cluster, prefix, 60_000);
    const a = await leases.acquire("owner-a");
    const b = await leases.acquire("owner-b");
    expect(a).not.toBe(b);
    expect(await leases.renew(a, "owner-a")).toBe(true);
    expect(await leases.renew(a, "owner-b")).toBe(false);
    await leases.release(a, "owner-a");
    await leases.release(b, "owner-b");
  });

  it("keeps acked writes and keeps working when a master dies and its replica takes over", async () => {
    const routes = new RedisSessionRoutes(cluster, prefix, 600);
    const tokens = new RedisTokenStore(cluster, prefix);
    const uids = Array.from({ length: 30 }, (_, i) => uidOf(5000 + i));
    for (const uid of uids) {
      await routes.bind(uid, { nodeId: "chat-2", sessionId: `f${uid}` });
      await tokens.put(uid, { token: `tok${uid}`, expiresAtMs: Date.now() + 600_000 });
    }
    const victim = await masterPortOf(`${prefix}route:${uids[0]}`);
    // Acked means replicated here: WAIT on every master for its replica to have every write.
    for (const master of cluster.nodes("master")) expect(await master.call("WAIT", 1, 5000)).toBe(1);

    const victimClient = new Redis(victim, "127.0.0.1", { lazyConnect: true, maxRetriesPerRequest: 0 });
    await victimClient.call("SHUTDOWN", "NOSAVE").catch(() => undefined); // the connection drops: expected
    victimClient.disconnect();
    const began = Date.now();
    // Each step says when it ended, so a slow failover shows which step it was.
    const step = (what: string) => console.log(`${((Date.now() - began) / 1000).toFixed(1)} s: ${what}`);
    step(`shut down redis master on ${victim}; waiting for its replica to take over`);

    await waitFor(
      "a replica to be promoted",
      async () => (await masterPortOf(`${prefix}route:${uids[0]}`)) !== victim,
      30_000,
    );
    step("a replica took over");
    const found = await waitFor("routes readable after failover", async () => {
      const routesNow = await routes.lookup(uids);
      return routesNow.size === uids.length ? routesNow : undefined;
    });
    for (const uid of uids) expect(found.get(uid)?.sessionId).toBe(`f${uid}`);
    for (const uid of uids) expect((await tokens.get(uid))?.token).toBe(`tok${uid}`);
    // New writes land too.
    await routes.bind("6000", { nodeId: "chat-3", sessionId: "new" });
    expect((await routes.lookup(["6000"])).get("6000")?.sessionId).toBe("new");
    step("reads and writes work");

    // The old master comes back as a replica; the cluster is whole again.
    await restoreKilledRedisMaster(stack, victim);
    step("it is a replica again, the cluster is whole");
    // The steps' own limits (30 s, 60 s, then two up.sh runs and 90 s of waiting) fit in this one.
  }, 600_000);
});

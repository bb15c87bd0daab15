import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { AppError, codeOf, ErrorCode } from "../src/errors.js";
import { leaseSnowflake } from "../src/ids/lease-snowflake.js";
import { decodeSnowflake, MAX_WORKER_ID } from "../src/ids/snowflake.js";
import { RedisWorkerIdLeases, workerLeaseKey } from "../src/ids/worker-leases.js";
import { createLogger } from "../src/log/logger.js";
import { createRedis } from "../src/routing/redis-client.js";
import { testConfig } from "./helpers/env.js";

const log = createLogger("test", "silent");

function nextCode(ids: { next(): string }): ErrorCode | "none" {
  try {
    ids.next();
    return "none";
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return codeOf(err);
  }
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("worker id leases", () => {
  let redis: Redis | Cluster;
  let config: Config;

  beforeAll(() => {
    config = testConfig({ WORKER_LEASE_TTL_MS: 300 });
    redis = createRedis(config);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it("never gives one id to two holders, and release frees it", async () => {
    const prefix = `${config.REDIS_KEY_PREFIX}pool:`;
    const leases = new RedisWorkerIdLeases(redis, prefix, 60_000);
    const ids = await Promise.all(Array.from({ length: 50 }, (_, i) => leases.acquire(`owner-${i}`)));
    expect(new Set(ids).size).toBe(50);
    for (const id of ids) expect(id >= 0 && id <= MAX_WORKER_ID).toBe(true);

    // Fill the rest: every id is then held once, and one more is refused.
    const rest = await Promise.all(Array.from({ length: 1024 - 50 }, (_, i) => leases.acquire(`filler-${i}`)));
    expect(new Set([...ids, ...rest]).size).toBe(1024);
    await expect(leases.acquire("one-too-many")).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });

    // Only the owner can release; then the id is the one free id and is taken again.
    const freed = ids[0] as number;
    await leases.release(freed, "not-the-owner");
    await expect(leases.acquire("still-full")).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    await leases.release(freed, "owner-0");
    expect(await leases.acquire("newcomer")).toBe(freed);
    expect(await leases.renew(freed, "owner-0")).toBe(false);
    expect(await leases.renew(freed, "newcomer")).toBe(true);
  });

  it("stops issuing ids under a lease taken by someone else, then leases another id and goes on", async () => {
    const leases = new RedisWorkerIdLeases(redis, config.REDIS_KEY_PREFIX, config.WORKER_LEASE_TTL_MS);
    const leased = await leaseSnowflake({ leases, config, log, owner: "victim" });
    const stolen = leased.workerId;
    const before = leased.ids.next();
    expect(decodeSnowflake(before).workerId).toBe(stolen);

    // As if the lease had expired and another process had claimed the id (or a Redis failover
    // had lost it).
    await redis.set(workerLeaseKey(config.REDIS_KEY_PREFIX, stolen), "thief", "PX", 60_000);
    await eventually(() => leased.workerId !== stolen);
    const after = leased.ids.next();
    expect(decodeSnowflake(after).workerId).toBe(leased.workerId);
    expect(BigInt(after) > BigInt(before)).toBe(true);
    expect(await redis.get(workerLeaseKey(config.REDIS_KEY_PREFIX, leased.workerId))).toBe("victim");

    await leased.release();
    expect(nextCode(leased.ids)).toBe(ErrorCode.UNAVAILABLE);
    // Releasing frees the new id and leaves alone the one it no longer holds.
    expect(await redis.get(workerLeaseKey(config.REDIS_KEY_PREFIX, leased.workerId))).toBeNull();
    expect(await redis.get(workerLeaseKey(config.REDIS_KEY_PREFIX, stolen))).toBe("thief");
  });

  it("issues no id while its lease is lost and none can be had", async () => {
    // Every id but the victim's is held, so once its own is taken there is nothing to lease.
    const prefix = `${config.REDIS_KEY_PREFIX}full:`;
    const leases = new RedisWorkerIdLeases(redis, prefix, config.WORKER_LEASE_TTL_MS);
    const leased = await leaseSnowflake({ leases, config, log, owner: "victim" });
    const others = new RedisWorkerIdLeases(redis, prefix, 60_000);
    await Promise.all(Array.from({ length: MAX_WORKER_ID }, (_, i) => others.acquire(`holder-${i}`)));
    await redis.set(workerLeaseKey(prefix, leased.workerId), "thief", "PX", 60_000);

    await eventually(() => nextCode(leased.ids) !== "none");
    // Several lease attempts later (they come every ~100 ms here), still none.
    await new Promise((r) => setTimeout(r, 500));
    expect(nextCode(leased.ids)).toBe(ErrorCode.UNAVAILABLE);

    // An id comes free: the victim leases it and issues ids again.
    await redis.del(workerLeaseKey(prefix, 7));
    await eventually(() => nextCode(leased.ids) === "none");
    expect(leased.workerId).toBe(7);
    await leased.release();
  });

  it("keeps its lease while renewing, and gives it back on release", async () => {
    const leased = await leaseSnowflake({
      leases: new RedisWorkerIdLeases(redis, config.REDIS_KEY_PREFIX, 600),
      config,
      log,
      owner: "keeper",
    });
    const key = workerLeaseKey(config.REDIS_KEY_PREFIX, leased.workerId);
    // Three TTLs: only renewals keep it alive this long.
    await new Promise((r) => setTimeout(r, 1800));
    expect(nextCode(leased.ids)).toBe("none");
    expect(await redis.get(key)).toBe("keeper");
    await leased.release();
    expect(await redis.get(key)).toBeNull();
    expect(nextCode(leased.ids)).toBe(ErrorCode.UNAVAILABLE);
  });

  it("stops issuing ids when Redis cannot be reached before the lease runs out", async () => {
    const own = createRedis(config);
    const leased = await leaseSnowflake({
      leases: new RedisWorkerIdLeases(own, config.REDIS_KEY_PREFIX, config.WORKER_LEASE_TTL_MS),
      config,
      log,
      owner: "cut-off",
    });
    expect(nextCode(leased.ids)).toBe("none");
    own.disconnect();
    await eventually(() => nextCode(leased.ids) !== "none");
    expect(nextCode(leased.ids)).toBe(ErrorCode.UNAVAILABLE);
    await leased.release();
  });
});

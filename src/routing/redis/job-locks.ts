import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { JobLocks } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

/** Extends the lease only while the caller's token holds it (a lapsed holder cannot take it back). */
const RENEW_SCRIPT = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`;

/** Job leases in Redis: SET NX PX takes one in one round trip, shared by every process. */
export class RedisJobLocks implements JobLocks {
  readonly #renew: RedisScript;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
  ) {
    this.#renew = redisScript(redis, RENEW_SCRIPT, 1);
  }

  async acquire(key: string, ttlMs: number): Promise<string | null> {
    const token = randomUUID();
    const taken = await this.redis.set(
      `${this.keyPrefix}lock:${key}`,
      token,
      "PX",
      Math.max(1, Math.ceil(ttlMs)),
      "NX",
    );
    return taken === "OK" ? token : null;
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    const renewed = await this.#renew(`${this.keyPrefix}lock:${key}`, token, String(Math.max(1, Math.ceil(ttlMs))));
    return Number(renewed) === 1;
  }
}

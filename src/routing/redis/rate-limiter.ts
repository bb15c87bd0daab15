import type { Cluster, Redis } from "ioredis";
import type { RateLimiter } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

/**
 * One round trip that counts the hits and starts the window on the first one; the PTTL check
 * repairs a key left without expiry (so a counter can never stick forever). A weighted hit
 * (ARGV[2] > 1) past the limit (ARGV[3]) is taken back at once.
 */
const HIT_SCRIPT = `
local weight = tonumber(ARGV[2])
local count = redis.call("INCRBY", KEYS[1], weight)
local ttl = redis.call("PTTL", KEYS[1])
if count == weight or ttl < 0 then
  redis.call("PEXPIRE", KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if weight > 1 and count > tonumber(ARGV[3]) then
  redis.call("DECRBY", KEYS[1], weight)
end
return {count, ttl}
`;

/** Fixed-window counters in Redis. */
export class RedisRateLimiter implements RateLimiter {
  /** The scripts, sent by SHA after their first use on a connection. */
  readonly #run: Record<"HIT_SCRIPT", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
  ) {
    this.#run = {
      HIT_SCRIPT: redisScript(this.redis, HIT_SCRIPT, 1),
    };
  }

  async hit(
    key: string,
    limit: number,
    windowSeconds: number,
    weight = 1,
  ): Promise<{ allowed: boolean; retryAfterSeconds: number }> {
    const [count, ttlMs] = (await this.#run.HIT_SCRIPT(
      `${this.keyPrefix}rl:${key}`,
      String(windowSeconds * 1000),
      String(weight),
      String(limit),
    )) as [number, number];
    const allowed = count <= limit;
    return { allowed, retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(ttlMs / 1000)) };
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(`${this.keyPrefix}rl:${key}`);
  }
}

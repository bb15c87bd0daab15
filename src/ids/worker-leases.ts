import { randomInt } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { AppError, ErrorCode } from "../errors.js";
import { type RedisScript, redisScript } from "../routing/redis/script.js";
import { MAX_WORKER_ID } from "./snowflake.js";

/** Exclusive, expiring claims on snowflake worker ids, so two live processes never share one. */
export interface WorkerIdLeases {
  /** How long a lease lives after acquire or renew; the holder renews well before. */
  readonly ttlMs: number;
  /** Claims a free worker id for owner; throws AppError(UNAVAILABLE) when all are taken. */
  acquire(owner: string): Promise<number>;
  /** Extends the lease; false when owner no longer holds it (it expired or was taken). */
  renew(workerId: number, owner: string): Promise<boolean>;
  /** Gives the id back, if owner still holds it. */
  release(workerId: number, owner: string): Promise<void>;
}

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/** The Redis key holding the lease on one worker id (its value is the owner). */
export function workerLeaseKey(keyPrefix: string, workerId: number): string {
  return `${keyPrefix}idworker:${workerId}`;
}

/** One key per worker id (SET NX PX); renew and release only by the owner that holds it. */
export class RedisWorkerIdLeases implements WorkerIdLeases {
  /** The scripts, sent by SHA after their first use on a connection. */
  readonly #run: Record<"RENEW" | "RELEASE", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    readonly ttlMs: number,
  ) {
    this.#run = {
      RENEW: redisScript(this.redis, RENEW, 1),
      RELEASE: redisScript(this.redis, RELEASE, 1),
    };
  }

  async acquire(owner: string): Promise<number> {
    const ids = MAX_WORKER_ID + 1;
    // A random start keeps processes starting together from all racing for id 0.
    const start = randomInt(ids);
    for (let i = 0; i < ids; i++) {
      const workerId = (start + i) % ids;
      const ok = await this.redis.set(this.#key(workerId), owner, "PX", this.ttlMs, "NX");
      if (ok === "OK") return workerId;
    }
    throw new AppError(ErrorCode.UNAVAILABLE, `all ${ids} snowflake worker ids are leased`);
  }

  async renew(workerId: number, owner: string): Promise<boolean> {
    return (await this.#run.RENEW(this.#key(workerId), owner, this.ttlMs)) === 1;
  }

  async release(workerId: number, owner: string): Promise<void> {
    await this.#run.RELEASE(this.#key(workerId), owner);
  }

  #key(workerId: number): string {
    return workerLeaseKey(this.keyPrefix, workerId);
  }
}

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ERRORS, type Lock, type Locker, type RequestRelease } from "@tus/server";
import type { Cluster, Redis } from "ioredis";
import type { Config } from "../config/settings.js";
import { type RedisScript, redisScript } from "../routing/redis/script.js";

export type UploadLockSettings = Pick<Config, "GATE_RESUMABLE_LOCK_MS" | "GATE_RESUMABLE_LOCK_WAIT_MS">;

/** Extends the lease while the token holds it; 2 when someone asked for the lock meanwhile. */
const RENEW = `
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
if redis.call("EXISTS", KEYS[2]) == 1 then return 2 end
return 1
`;

/** Frees the lock only if the token still holds it (a lapsed holder must not free a successor's). */
const RELEASE = `
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1], KEYS[2]) end
return 0
`;

/** How often a waiting request tries again, and a holder looks whether someone waits. */
const POLL_MS = 50;

/**
 * tus's lock of an upload (one request at a time per upload) in Redis, so that it holds across
 * every gate: with several gates behind a balancer, a resumed upload's HEAD and PATCH may reach
 * another gate than the request that was cut, which may still be writing. `@tus/server`'s own
 * MemoryLocker only sees its process.
 * A waiting request marks the upload wanted; the holder sees that at its next renewal and is
 * asked to stop (tus's requestRelease: it ends its request, so a half-open connection does not
 * keep the upload), as MemoryLocker does within a process.
 */
export class RedisUploadLocker implements Locker {
  readonly #renew: RedisScript;
  readonly #release: RedisScript;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    private readonly settings: UploadLockSettings,
  ) {
    this.#renew = redisScript(redis, RENEW, 2);
    this.#release = redisScript(redis, RELEASE, 2);
  }

  newLock(uploadId: string): Lock {
    // One hash tag: both keys of an upload in one cluster slot, as the scripts need.
    const base = `${this.keyPrefix}tus-lock:{${uploadId}}`;
    return new RedisUploadLock(this.redis, { held: base, wanted: `${base}:wanted` }, this.settings, {
      renew: this.#renew,
      release: this.#release,
    });
  }
}

class RedisUploadLock implements Lock {
  readonly #token = randomUUID();
  #renewal: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: { held: string; wanted: string },
    private readonly settings: UploadLockSettings,
    private readonly scripts: { renew: RedisScript; release: RedisScript },
  ) {}

  async lock(signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const leaseMs = this.settings.GATE_RESUMABLE_LOCK_MS;
    const deadline = Date.now() + this.settings.GATE_RESUMABLE_LOCK_WAIT_MS;
    while (!signal.aborted && Date.now() < deadline) {
      if ((await this.redis.set(this.keys.held, this.#token, "PX", leaseMs, "NX")) === "OK") {
        // Its own mark (set before it got the lock) must not make it release at once; a later
        // waiter marks again within POLL_MS.
        await this.redis.del(this.keys.wanted);
        this.#keep(leaseMs, requestRelease);
        return;
      }
      await this.redis.set(this.keys.wanted, "1", "PX", leaseMs);
      await sleep(POLL_MS);
    }
    throw ERRORS.ERR_LOCK_TIMEOUT;
  }

  async unlock(): Promise<void> {
    clearInterval(this.#renewal);
    this.#renewal = undefined;
    await this.scripts.release(this.keys.held, this.keys.wanted, this.#token);
  }

  /** Renews the lease while held; asks the request to stop once another one waits. */
  #keep(leaseMs: number, requestRelease: RequestRelease): void {
    let asked = false;
    let busy = false;
    this.#renewal = setInterval(
      () => {
        if (busy) return;
        busy = true;
        this.scripts
          .renew(this.keys.held, this.keys.wanted, this.#token, leaseMs)
          .then(async (answer) => {
            if (Number(answer) === 2 && !asked) {
              asked = true;
              await requestRelease();
            }
          })
          // A failed renewal is retried at the next tick; the lease outlives several.
          .catch(() => undefined)
          .finally(() => {
            busy = false;
          });
      },
      Math.max(POLL_MS, Math.floor(leaseMs / 10)),
    );
    this.#renewal.unref();
  }
}

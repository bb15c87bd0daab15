import { randomInt } from "node:crypto";
import { AppError, ErrorCode } from "../errors.js";
import { type Clock, ExpiringMap, systemClock } from "../routing/memory/clock.js";
import { MAX_WORKER_ID } from "./snowflake.js";
import type { WorkerIdLeases } from "./worker-leases.js";

/**
 * Worker id leases among the id generators of one process (ROUTING_BACKEND=memory): gate and
 * every chat node of `npm start` get distinct worker ids, with the same expiry rules as Redis.
 */
export class MemoryWorkerIdLeases implements WorkerIdLeases {
  readonly #owners: ExpiringMap<number, string>;

  constructor(
    readonly ttlMs: number,
    clock: Clock = systemClock,
  ) {
    this.#owners = new ExpiringMap(clock);
  }

  async acquire(owner: string): Promise<number> {
    const ids = MAX_WORKER_ID + 1;
    const start = randomInt(ids);
    for (let i = 0; i < ids; i++) {
      const workerId = (start + i) % ids;
      if (this.#owners.get(workerId) === undefined) {
        this.#owners.set(workerId, owner, this.ttlMs);
        return workerId;
      }
    }
    throw new AppError(ErrorCode.UNAVAILABLE, `all ${ids} snowflake worker ids are leased`);
  }

  async renew(workerId: number, owner: string): Promise<boolean> {
    if (this.#owners.get(workerId) !== owner) return false;
    this.#owners.set(workerId, owner, this.ttlMs);
    return true;
  }

  async release(workerId: number, owner: string): Promise<void> {
    if (this.#owners.get(workerId) === owner) this.#owners.delete(workerId);
  }
}

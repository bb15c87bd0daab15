import { randomUUID } from "node:crypto";
import type { JobLocks } from "../ports.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Job leases of this process (ROUTING_BACKEND=memory: the embedded default, one process). */
export class MemoryJobLocks implements JobLocks {
  readonly #held: ExpiringMap<string, string>;

  constructor(clock: Clock = systemClock) {
    this.#held = new ExpiringMap(clock);
  }

  async acquire(key: string, ttlMs: number): Promise<string | null> {
    if (this.#held.get(key) !== undefined) return null;
    const token = randomUUID();
    this.#held.set(key, token, ttlMs);
    return token;
  }

  async renew(key: string, token: string, ttlMs: number): Promise<boolean> {
    if (this.#held.get(key) !== token) return false;
    this.#held.set(key, token, ttlMs);
    return true;
  }
}

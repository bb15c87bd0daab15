import type { RateLimiter } from "../ports.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Fixed-window counters of this process: a window starts at a key's first hit. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #counters: ExpiringMap<string, { count: number }>;

  constructor(private readonly clock: Clock = systemClock) {
    this.#counters = new ExpiringMap(clock);
  }

  async hit(
    key: string,
    limit: number,
    windowSeconds: number,
    weight = 1,
  ): Promise<{ allowed: boolean; retryAfterSeconds: number }> {
    let counter = this.#counters.get(key);
    if (!counter) {
      counter = { count: 0 };
      this.#counters.set(key, counter, windowSeconds * 1000);
    }
    counter.count += weight;
    const allowed = counter.count <= limit;
    if (allowed) return { allowed, retryAfterSeconds: 0 };
    if (weight > 1) counter.count -= weight;
    const leftMs = (this.#counters.expiresAt(key) ?? this.clock()) - this.clock();
    return { allowed, retryAfterSeconds: Math.max(1, Math.ceil(leftMs / 1000)) };
  }

  async reset(key: string): Promise<void> {
    this.#counters.delete(key);
  }
}

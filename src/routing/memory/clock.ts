/** Milliseconds since the epoch; tests may pass their own to move time without waiting. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/** Values that stop existing at expiresAtMs, judged when read; no timers. */
export class ExpiringMap<K, V> {
  readonly #entries = new Map<K, { value: V; expiresAtMs: number }>();
  #nextSweepMs = 0;

  constructor(
    private readonly clock: Clock,
    /** How often, at most, one write also drops every expired entry, so unread keys do not pile up. */
    private readonly sweepEveryMs = 60_000,
  ) {}

  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAtMs <= this.clock()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  expiresAt(key: K): number | undefined {
    return this.get(key) === undefined ? undefined : this.#entries.get(key)?.expiresAtMs;
  }

  /** ttlMs of Infinity: never expires. */
  set(key: K, value: V, ttlMs: number): void {
    const now = this.clock();
    this.#sweep(now);
    this.#entries.set(key, { value, expiresAtMs: now + ttlMs });
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  /** Live entries, with their expiry. */
  *entries(): IterableIterator<[K, V, number]> {
    const now = this.clock();
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAtMs <= now) this.#entries.delete(key);
      else yield [key, entry.value, entry.expiresAtMs];
    }
  }

  get size(): number {
    return [...this.entries()].length;
  }

  #sweep(now: number): void {
    if (now < this.#nextSweepMs) return;
    this.#nextSweepMs = now + this.sweepEveryMs;
    for (const [key, entry] of this.#entries) if (entry.expiresAtMs <= now) this.#entries.delete(key);
  }
}

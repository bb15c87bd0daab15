import type { CodeAttempt, StoredCode, VerifyCodeStore } from "../ports.js";
import { EXPIRED_CODE_GRACE_MS } from "../redis/verify-code-store.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Verify codes of this process by email; kept graceMs past expiry like the Redis store. */
export class MemoryVerifyCodeStore implements VerifyCodeStore {
  readonly #codes: ExpiringMap<string, StoredCode & { attempts: number }>;

  constructor(
    private readonly graceMs = EXPIRED_CODE_GRACE_MS,
    private readonly clock: Clock = systemClock,
  ) {
    this.#codes = new ExpiringMap(clock);
  }

  async put(email: string, code: StoredCode): Promise<void> {
    const ttlMs = Math.max(1, code.expiresAtMs - this.clock()) + this.graceMs;
    this.#codes.set(email, { code: code.code, expiresAtMs: code.expiresAtMs, attempts: 0 }, ttlMs);
  }

  async get(email: string): Promise<StoredCode | null> {
    const stored = this.#codes.get(email);
    return stored ? { code: stored.code, expiresAtMs: stored.expiresAtMs } : null;
  }

  /** Synchronous from lookup to update, so concurrent guesses are counted one after another. */
  async attempt(
    email: string,
    guess: string,
    options: { maxAttempts: number; consume: boolean; nowMs: number },
  ): Promise<CodeAttempt> {
    const stored = this.#codes.get(email);
    if (!stored) return "none";
    if (options.nowMs > stored.expiresAtMs) return "expired";
    if (stored.code !== guess) {
      stored.attempts += 1;
      if (stored.attempts >= options.maxAttempts) this.#codes.delete(email);
      return "wrong";
    }
    if (options.consume) this.#codes.delete(email);
    return "ok";
  }

  /** Check and delete run in one synchronous step, so two racing uses cannot both succeed. */
  async consume(email: string, code: string): Promise<boolean> {
    if (this.#codes.get(email)?.code !== code) return false;
    this.#codes.delete(email);
    return true;
  }
}

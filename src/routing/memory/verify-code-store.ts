import type { StoredCode, VerifyCodeStore } from "../ports.js";
import { EXPIRED_CODE_GRACE_MS } from "../redis/verify-code-store.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Verify codes of this process by email; kept graceMs past expiry like the Redis store. */
export class MemoryVerifyCodeStore implements VerifyCodeStore {
  readonly #codes: ExpiringMap<string, StoredCode>;

  constructor(
    private readonly graceMs = EXPIRED_CODE_GRACE_MS,
    private readonly clock: Clock = systemClock,
  ) {
    this.#codes = new ExpiringMap(clock);
  }

  async put(email: string, code: StoredCode): Promise<void> {
    const ttlMs = Math.max(1, code.expiresAtMs - this.clock()) + this.graceMs;
    this.#codes.set(email, { code: code.code, expiresAtMs: code.expiresAtMs }, ttlMs);
  }

  async get(email: string): Promise<StoredCode | null> {
    const stored = this.#codes.get(email);
    return stored ? { ...stored } : null;
  }

  /** Check and delete run in one synchronous step, so two racing uses cannot both succeed. */
  async consume(email: string, code: string): Promise<boolean> {
    if (this.#codes.get(email)?.code !== code) return false;
    this.#codes.delete(email);
    return true;
  }
}

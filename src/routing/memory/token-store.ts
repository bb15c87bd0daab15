import type { Uid } from "../../storage/ports.js";
import type { IssuedToken, TokenStore } from "../ports.js";
import { EXPIRED_TOKEN_GRACE_MS } from "../redis/token-store.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Login tokens of this process, one per uid; kept graceMs past expiry like the Redis store. */
export class MemoryTokenStore implements TokenStore {
  readonly #tokens: ExpiringMap<Uid, IssuedToken>;

  constructor(
    private readonly graceMs = EXPIRED_TOKEN_GRACE_MS,
    private readonly clock: Clock = systemClock,
  ) {
    this.#tokens = new ExpiringMap(clock);
  }

  async put(uid: Uid, token: IssuedToken): Promise<void> {
    const ttlMs = Math.max(1, token.expiresAtMs - this.clock()) + this.graceMs;
    this.#tokens.set(uid, { token: token.token, expiresAtMs: token.expiresAtMs }, ttlMs);
  }

  async get(uid: Uid): Promise<IssuedToken | null> {
    const stored = this.#tokens.get(uid);
    return stored ? { ...stored } : null;
  }
}

import type { Uid } from "../../storage/ports.js";
import { type IssuedToken, TOKENS_PER_USER, type TokenStore } from "../ports.js";
import { EXPIRED_TOKEN_GRACE_MS } from "../redis/token-store.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Login tokens of this process, the newest TOKENS_PER_USER per uid; kept graceMs past expiry like the Redis store. */
export class MemoryTokenStore implements TokenStore {
  readonly #tokens: ExpiringMap<Uid, IssuedToken[]>;

  constructor(
    private readonly graceMs = EXPIRED_TOKEN_GRACE_MS,
    private readonly clock: Clock = systemClock,
    private readonly keep = TOKENS_PER_USER,
  ) {
    this.#tokens = new ExpiringMap(clock);
  }

  async put(uid: Uid, token: IssuedToken): Promise<void> {
    const now = this.clock();
    const ttlMs = Math.max(1, token.expiresAtMs - now) + this.graceMs;
    // A device kind keeps one token: its new login replaces the older one.
    const older = (this.#tokens.get(uid) ?? []).filter(
      (t) =>
        t.token !== token.token && t.expiresAtMs + this.graceMs > now && !(token.device && t.device === token.device),
    );
    const fresh: IssuedToken = { token: token.token, expiresAtMs: token.expiresAtMs };
    if (token.device) fresh.device = token.device;
    const kept = [fresh, ...older].slice(0, this.keep);
    this.#tokens.set(uid, kept, ttlMs);
  }

  async get(uid: Uid): Promise<IssuedToken | null> {
    return (await this.recent(uid))[0] ?? null;
  }

  async recent(uid: Uid): Promise<IssuedToken[]> {
    return (this.#tokens.get(uid) ?? []).map((t) => ({ ...t }));
  }

  /** One synchronous step, like the Redis store's script. */
  async revoke(uid: Uid, token: string | undefined): Promise<IssuedToken[]> {
    const list = this.#tokens.get(uid) ?? [];
    const removed = list.filter((t) => token === undefined || t.token === token);
    if (removed.length === 0) return [];
    const kept = list.filter((t) => !removed.includes(t));
    if (kept.length === 0) this.#tokens.delete(uid);
    else this.#tokens.set(uid, kept, Math.max(1, (this.#tokens.expiresAt(uid) ?? 0) - this.clock()));
    return removed.map((t) => ({ ...t }));
  }
}

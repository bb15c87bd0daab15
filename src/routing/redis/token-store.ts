import type { Cluster, Redis } from "ioredis";
import type { Uid } from "../../storage/ports.js";
import type { IssuedToken, TokenStore } from "../ports.js";

/** How long a token is kept after it expired, so checking it says "expired" rather than "invalid". */
export const EXPIRED_TOKEN_GRACE_MS = 60 * 60 * 1000;

/** Login tokens in Redis, one key per uid; a new token overwrites the older one. */
export class RedisTokenStore implements TokenStore {
  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    private readonly graceMs = EXPIRED_TOKEN_GRACE_MS,
  ) {}

  async put(uid: Uid, token: IssuedToken): Promise<void> {
    const ttlMs = Math.max(1, token.expiresAtMs - Date.now()) + this.graceMs;
    await this.redis.set(this.#key(uid), JSON.stringify(token), "PX", ttlMs);
  }

  async get(uid: Uid): Promise<IssuedToken | null> {
    const raw = await this.redis.get(this.#key(uid));
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<IssuedToken>;
    if (typeof parsed.token !== "string" || typeof parsed.expiresAtMs !== "number") return null;
    return { token: parsed.token, expiresAtMs: parsed.expiresAtMs };
  }

  #key(uid: Uid): string {
    return `${this.keyPrefix}token:${uid}`;
  }
}

import type { Cluster, Redis } from "ioredis";
import type { StoredCode, VerifyCodeStore } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

/**
 * How long a code's key outlives the code itself: within this grace a late attempt is told
 * VERIFY_CODE_EXPIRED rather than VERIFY_CODE_WRONG.
 */
export const EXPIRED_CODE_GRACE_MS = 10 * 60 * 1000;

/** Deletes the key only if it still holds this code, so two racing uses cannot both succeed. */
const CONSUME_SCRIPT = `
local raw = redis.call("GET", KEYS[1])
if not raw then return 0 end
local stored = cjson.decode(raw)
if stored.code ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
return 1
`;

/** Verify codes in Redis, one JSON value per email. */
export class RedisVerifyCodeStore implements VerifyCodeStore {
  /** The scripts, sent by SHA after their first use on a connection. */
  readonly #run: Record<"CONSUME_SCRIPT", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    private readonly graceMs = EXPIRED_CODE_GRACE_MS,
  ) {
    this.#run = {
      CONSUME_SCRIPT: redisScript(this.redis, CONSUME_SCRIPT, 1),
    };
  }

  private key(email: string): string {
    return `${this.keyPrefix}verify:code:${email}`;
  }

  async put(email: string, code: StoredCode): Promise<void> {
    const ttlMs = Math.max(1, code.expiresAtMs - Date.now()) + this.graceMs;
    await this.redis.set(this.key(email), JSON.stringify(code), "PX", ttlMs);
  }

  async get(email: string): Promise<StoredCode | null> {
    const raw = await this.redis.get(this.key(email));
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<StoredCode>;
    if (typeof parsed.code !== "string" || typeof parsed.expiresAtMs !== "number") return null;
    return { code: parsed.code, expiresAtMs: parsed.expiresAtMs };
  }

  async consume(email: string, code: string): Promise<boolean> {
    const done = await this.#run.CONSUME_SCRIPT(this.key(email), code);
    return done === 1;
  }
}

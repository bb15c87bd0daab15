import type { Cluster, Redis } from "ioredis";
import type { CodeAttempt, StoredCode, VerifyCodeStore } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

/**
 * How long a code's key outlives the code itself: within this grace a late attempt is told
 * VERIFY_CODE_EXPIRED rather than VERIFY_CODE_WRONG.
 */
export const EXPIRED_CODE_GRACE_MS = 10 * 60 * 1000;

/**
 * One guess (VerifyCodeStore.attempt), atomic: Redis runs a script alone, so every guess is
 * counted before the next is compared. ARGV: guess, maxAttempts, consume (1/0), now (ms).
 */
const ATTEMPT_SCRIPT = `
local raw = redis.call("GET", KEYS[1])
if not raw then return "none" end
local stored = cjson.decode(raw)
if tonumber(ARGV[4]) > stored.expiresAtMs then return "expired" end
if stored.code ~= ARGV[1] then
  local attempts = (stored.attempts or 0) + 1
  if attempts >= tonumber(ARGV[2]) then
    redis.call("DEL", KEYS[1])
  else
    stored.attempts = attempts
    redis.call("SET", KEYS[1], cjson.encode(stored), "KEEPTTL")
  end
  return "wrong"
end
if ARGV[3] == "1" then redis.call("DEL", KEYS[1]) end
return "ok"
`;

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
  readonly #run: Record<"CONSUME_SCRIPT" | "ATTEMPT_SCRIPT", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    private readonly graceMs = EXPIRED_CODE_GRACE_MS,
  ) {
    this.#run = {
      CONSUME_SCRIPT: redisScript(this.redis, CONSUME_SCRIPT, 1),
      ATTEMPT_SCRIPT: redisScript(this.redis, ATTEMPT_SCRIPT, 1),
    };
  }

  private key(email: string): string {
    return `${this.keyPrefix}verify:code:${email}`;
  }

  async put(email: string, code: StoredCode): Promise<void> {
    const ttlMs = Math.max(1, code.expiresAtMs - Date.now()) + this.graceMs;
    const stored = { code: code.code, expiresAtMs: code.expiresAtMs, attempts: 0 };
    await this.redis.set(this.key(email), JSON.stringify(stored), "PX", ttlMs);
  }

  async get(email: string): Promise<StoredCode | null> {
    const raw = await this.redis.get(this.key(email));
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<StoredCode>;
    if (typeof parsed.code !== "string" || typeof parsed.expiresAtMs !== "number") return null;
    return { code: parsed.code, expiresAtMs: parsed.expiresAtMs };
  }

  async attempt(
    email: string,
    guess: string,
    options: { maxAttempts: number; consume: boolean; nowMs: number },
  ): Promise<CodeAttempt> {
    const found = await this.#run.ATTEMPT_SCRIPT(
      this.key(email),
      guess,
      options.maxAttempts,
      options.consume ? 1 : 0,
      options.nowMs,
    );
    return found as CodeAttempt;
  }

  async consume(email: string, code: string): Promise<boolean> {
    const done = await this.#run.CONSUME_SCRIPT(this.key(email), code);
    return done === 1;
  }
}

import type { Cluster, Redis } from "ioredis";
import type { Uid } from "../../storage/ports.js";
import { type IssuedToken, TOKENS_PER_USER, type TokenStore } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

/** How long a token is kept after it expired, so checking it says "expired" rather than "invalid". */
export const EXPIRED_TOKEN_GRACE_MS = 60 * 60 * 1000;

/**
 * Prepends a token to the uid's list (a JSON array; the single-token object of earlier versions
 * reads as a list of one), keeps the newest ARGV[2] that are not past their grace, and sets the
 * key's life to the new token's. One script, so two logins at once both stay in the list.
 */
const PUT_TOKEN = `
local list = {}
local current = redis.call('GET', KEYS[1])
if current then
  local ok, value = pcall(cjson.decode, current)
  if ok and type(value) == 'table' then
    if value.token then list = {value} else list = value end
  end
end
local fresh = cjson.decode(ARGV[1])
local kept = {fresh}
local keep = tonumber(ARGV[2])
local alive_after = tonumber(ARGV[3])
for _, t in ipairs(list) do
  if #kept >= keep then break end
  -- A device kind keeps one token: its new login replaces the older one.
  local same_device = type(fresh.device) == 'string' and fresh.device ~= '' and t.device == fresh.device
  if type(t) == 'table' and type(t.token) == 'string' and t.token ~= fresh.token and not same_device
     and tonumber(t.expiresAtMs) and tonumber(t.expiresAtMs) > alive_after then
    table.insert(kept, t)
  end
end
redis.call('SET', KEYS[1], cjson.encode(kept), 'PX', ARGV[4])
return #kept`;

/**
 * Removes the token ARGV[1] (or, with ARGV[1] empty, every token) from the uid's list in one
 * step, so a login racing a revocation cannot bring a revoked token back; answers the removed.
 */
const REVOKE_TOKENS = `
local current = redis.call('GET', KEYS[1])
if not current then return '[]' end
local ok, list = pcall(cjson.decode, current)
if not ok or type(list) ~= 'table' then return '[]' end
if list.token then list = {list} end
local kept, removed = {}, {}
for _, t in ipairs(list) do
  if ARGV[1] == '' or t.token == ARGV[1] then table.insert(removed, t) else table.insert(kept, t) end
end
if #removed == 0 then return '[]' end
if #kept == 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], cjson.encode(kept), 'KEEPTTL') end
return cjson.encode(removed)`;

/** Login tokens in Redis, one key per uid holding its newest TOKENS_PER_USER tokens. */
export class RedisTokenStore implements TokenStore {
  /** The scripts, sent by SHA after their first use on a connection. */
  readonly #run: Record<"PUT_TOKEN" | "REVOKE_TOKENS", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    private readonly graceMs = EXPIRED_TOKEN_GRACE_MS,
    private readonly keep = TOKENS_PER_USER,
  ) {
    this.#run = {
      PUT_TOKEN: redisScript(this.redis, PUT_TOKEN, 1),
      REVOKE_TOKENS: redisScript(this.redis, REVOKE_TOKENS, 1),
    };
  }

  async put(uid: Uid, token: IssuedToken): Promise<void> {
    const now = Date.now();
    const ttlMs = Math.max(1, token.expiresAtMs - now) + this.graceMs;
    const value = JSON.stringify({
      token: token.token,
      expiresAtMs: token.expiresAtMs,
      device: token.device || undefined,
    });
    await this.#run.PUT_TOKEN(this.#key(uid), value, this.keep, now - this.graceMs, ttlMs);
  }

  async get(uid: Uid): Promise<IssuedToken | null> {
    return (await this.recent(uid))[0] ?? null;
  }

  async recent(uid: Uid): Promise<IssuedToken[]> {
    return tokensOf(await this.redis.get(this.#key(uid)));
  }

  async revoke(uid: Uid, token: string | undefined): Promise<IssuedToken[]> {
    // cjson writes an empty Lua table as {}: either way, nothing was removed.
    return tokensOf(String(await this.#run.REVOKE_TOKENS(this.#key(uid), token ?? "")));
  }

  #key(uid: Uid): string {
    return `${this.keyPrefix}token:${uid}`;
  }
}

/** The stored list (or the single token of earlier versions) as tokens; anything else as none. */
function tokensOf(raw: string | null): IssuedToken[] {
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return [];
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.flatMap((t: Partial<IssuedToken> | null) =>
    t && typeof t.token === "string" && typeof t.expiresAtMs === "number"
      ? [
          {
            token: t.token,
            expiresAtMs: t.expiresAtMs,
            ...(typeof t.device === "string" ? { device: t.device } : {}),
          },
        ]
      : [],
  );
}

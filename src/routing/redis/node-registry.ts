import type { Cluster, Redis } from "ioredis";
import type { ChatNodeInfo } from "../../gen/shardchat/v1/status.js";
import type { NodeRegistry } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

// Expiry is judged by Redis's clock, not the caller's, so status processes on machines with
// skewed clocks agree on which nodes are live. Both keys carry the {nodes} hash tag: one slot.
const NOW_MS = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

const UPSERT = `${NOW_MS}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1`;

const REMOVE = `redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`;

// Prunes expired nodes and answers the info of the live ones, atomically, so a node refreshed
// concurrently is never pruned half-way.
const LIVE = `${NOW_MS}
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #expired > 0 then
  redis.call('ZREM', KEYS[2], unpack(expired))
  redis.call('HDEL', KEYS[1], unpack(expired))
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))`;

/** Live chat nodes in Redis: info in a hash, liveness in a sorted set scored by expiry time. */
export class RedisNodeRegistry implements NodeRegistry {
  readonly #infoKey: string;
  readonly #liveKey: string;

  /** The scripts, sent by SHA after their first use on a connection. */
  readonly #run: Record<"UPSERT" | "REMOVE" | "LIVE", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    keyPrefix: string,
  ) {
    this.#run = {
      UPSERT: redisScript(this.redis, UPSERT, 2),
      REMOVE: redisScript(this.redis, REMOVE, 2),
      LIVE: redisScript(this.redis, LIVE, 2),
    };
    this.#infoKey = `${keyPrefix}{nodes}:info`;
    this.#liveKey = `${keyPrefix}{nodes}:live`;
  }

  async upsert(node: ChatNodeInfo, ttlMs: number): Promise<void> {
    await this.#run.UPSERT(this.#infoKey, this.#liveKey, node.nodeId, JSON.stringify(node), ttlMs);
  }

  async remove(nodeId: string): Promise<void> {
    await this.#run.REMOVE(this.#infoKey, this.#liveKey, nodeId);
  }

  async live(): Promise<ChatNodeInfo[]> {
    const rows = (await this.#run.LIVE(this.#infoKey, this.#liveKey)) as (string | null)[];
    const nodes: ChatNodeInfo[] = [];
    for (const row of rows) {
      // A live id without info can only come from a hand-edited Redis; skip it rather than fail.
      if (row) nodes.push(JSON.parse(row) as ChatNodeInfo);
    }
    return nodes;
  }
}

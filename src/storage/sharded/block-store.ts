import { type KeyPlacement, MysqlBlockStore } from "../mysql/block-store.js";
import type { Shards } from "./shards.js";

/**
 * Rows placed by key over shards: read on the key's instance of the current map; each write
 * in a transaction behind the key's slot fence on that instance, tried again on the slot's new
 * owner while a rebalance moves it (Shards.retryingFences).
 */
export function shardedKeyPlacement(shards: Shards): KeyPlacement {
  return {
    instanceOf: (key) => shards.instanceFor(key).id,
    instances: () => shards.map.instances.map((i) => i.id),
    pool: (id) => shards.pool(id),
    write: (key, work) => shards.retryingFences(() => shards.write(shards.instanceFor(key).id, [key], work)),
  };
}

/**
 * Blocks over MySQL shards: a user_blocks row on the blocker's uid shard, the mark on the
 * pair's conversation row on the conversation's shard (where its appends read it).
 */
export class ShardedBlockStore extends MysqlBlockStore {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

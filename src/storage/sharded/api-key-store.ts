import { MysqlApiKeyStore } from "../mysql/api-key-store.js";
import { MysqlBanStore } from "../mysql/ban-store.js";
import { MysqlStorageStats } from "../mysql/storage-stats.js";
import { shardedKeyPlacement } from "./block-store.js";
import type { Shards } from "./shards.js";
import { shardedUidPlacement } from "./uid-placement.js";

/**
 * API keys over MySQL shards: global rows placed like reports, each on the shard of
 * "apikey:" + its id (so the rebalancer moves them with their slot); the list reads every shard.
 */
export class ShardedApiKeyStore extends MysqlApiKeyStore {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

/** Bans over MySQL shards: each on its uid's shard, beside the user's row (a login reads one shard). */
export class ShardedBanStore extends MysqlBanStore {
  constructor(shards: Shards) {
    super(shardedUidPlacement(shards));
  }
}

/** Rows of users and messages on each shard of the current map. */
export class ShardedStorageStats extends MysqlStorageStats {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

import { MysqlPushDeviceStore } from "../mysql/push-device-store.js";
import { shardedKeyPlacement } from "./block-store.js";
import type { Shards } from "./shards.js";

/**
 * Push devices over MySQL shards: a user's rows on its uid's shard (where its other rows are),
 * written behind the uid's slot fence and moved with the slot by the rebalancer.
 */
export class ShardedPushDeviceStore extends MysqlPushDeviceStore {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

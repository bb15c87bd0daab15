import { MysqlBotStore } from "../mysql/bot-store.js";
import { shardedKeyPlacement } from "./block-store.js";
import type { Shards } from "./shards.js";

/**
 * Bots over MySQL shards: a bot's row on its uid's shard (where its user row is), written behind
 * the uid's slot fence and moved with the slot by the rebalancer; the list reads every shard.
 */
export class ShardedBotStore extends MysqlBotStore {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

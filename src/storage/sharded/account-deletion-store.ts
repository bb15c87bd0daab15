import { MysqlAccountDeletionStore } from "../mysql/account-deletion-store.js";
import { shardedKeyPlacement } from "./block-store.js";
import type { Shards } from "./shards.js";

/**
 * Account deletion requests over MySQL shards: a row on its uid's shard (where the user's other
 * rows are), written behind the uid's slot fence; the deletion worker reads each instance of
 * the current map on its own, keeping the rows the map places there.
 */
export class ShardedAccountDeletionStore extends MysqlAccountDeletionStore {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

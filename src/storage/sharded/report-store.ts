import { MysqlReportStore } from "../mysql/report-store.js";
import { shardedKeyPlacement } from "./block-store.js";
import type { Shards } from "./shards.js";

/** Reports over MySQL shards, each on the shard of "report:" + its id; the newest read from every shard. */
export class ShardedReportStore extends MysqlReportStore {
  constructor(shards: Shards) {
    super(shardedKeyPlacement(shards));
  }
}

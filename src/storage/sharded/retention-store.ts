import { MysqlRetentionStore, MysqlSentMessageEraser, type RetentionPlacement } from "../mysql/retention-store.js";
import { ShardedConversationIndex } from "./conversation-index.js";
import type { Shards } from "./shards.js";

/**
 * Retention and an account's erase over shards: a purge pass runs on each instance of the
 * current map and keeps the conversations the map places there; a purge or an erase runs on its
 * conversation's instance behind the slot fence. A purge meeting a fence is not retried (the
 * slot is moving: its new owner's pass purges it); an erase follows the slot. A user's
 * conversations are its user_conversations index, as for its conversation list.
 */
export function shardedRetentionPlacement(shards: Shards, deadlockRetries: number): RetentionPlacement {
  const index = new ShardedConversationIndex(shards);
  return {
    instances: () => shards.map.instances.map((i) => i.id),
    instanceOf: (convId) => shards.instanceFor(convId).id,
    pool: (id) => shards.pool(id),
    fenceCheck: shards.fenceCheck,
    conversationsOf: (uid) => index.conversationsOf(uid),
    retryingFences: (work) => shards.retryingFences(work),
    deadlockRetries,
  };
}

export class ShardedRetentionStore extends MysqlRetentionStore {
  constructor(shards: Shards, deadlockRetries: number) {
    super(shardedRetentionPlacement(shards, deadlockRetries));
  }
}

export class ShardedSentMessageEraser extends MysqlSentMessageEraser {
  constructor(shards: Shards, deadlockRetries: number) {
    super(shardedRetentionPlacement(shards, deadlockRetries));
  }
}

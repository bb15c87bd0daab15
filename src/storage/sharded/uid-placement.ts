import type { Queryable, UidPlacement } from "../mysql/friend-store.js";
import type { Uid } from "../ports.js";
import type { Shards } from "./shards.js";

/**
 * Rows placed by uid over shards: read on the uid's instance of the current map; written there
 * in a transaction behind the slot fence, retried on the new owner while a rebalance moves the
 * slot (Shards.retryingFences), so no write lands on a copy that is being retired.
 */
export function shardedUidPlacement(shards: Shards): UidPlacement {
  return {
    poolOf: (uid: Uid) => shards.pool(shards.instanceFor(uid).id),
    write: <T>(uid: Uid, work: (db: Queryable) => Promise<T>) =>
      shards.retryingFences(() => shards.write(shards.instanceFor(uid).id, [uid], (conn) => work(conn))),
  };
}

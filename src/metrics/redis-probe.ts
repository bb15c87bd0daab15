import { Cluster } from "ioredis";
import type { RedisClient } from "../routing/redis-client.js";
import type { Probe } from "./health.js";

export interface RedisMasters {
  ok: number;
  /** Masters the cluster has flagged fail: down, their slots on a promoted replica or on nobody. */
  fail: number;
}

/**
 * Masters by state in a CLUSTER NODES answer. Only the cluster's verdict counts as fail (the flag
 * `fail`); `fail?` is one node's suspicion and may clear. A master that failed stays listed as
 * one until it comes back (as its successor's replica), so a lost master is seen after its
 * failover too: the cluster then runs with one replica fewer.
 */
export function mastersOf(clusterNodes: string): RedisMasters {
  const masters = { ok: 0, fail: 0 };
  for (const line of clusterNodes.split("\n")) {
    const flags = (line.trim().split(" ")[2] ?? "").split(",");
    if (!flags.includes("master")) continue;
    if (flags.includes("fail")) masters.fail++;
    else masters.ok++;
  }
  return masters;
}

/**
 * Redis's readiness probe: it passes while Redis answers. It also hands `record` the masters by
 * state: a cluster's from the CLUSTER NODES of whichever node answers first (every node at
 * once, so a dead one does not hold the probe up), a single Redis is its own one master.
 */
export function redisProbe(redis: RedisClient, record: (masters: RedisMasters) => void): Probe {
  return {
    name: "redis",
    async check() {
      try {
        if (redis instanceof Cluster) {
          const nodes = redis.nodes("all");
          const answer = await Promise.any(nodes.map((node) => node.cluster("NODES") as Promise<string>));
          record(mastersOf(answer));
        } else {
          await redis.ping();
          record({ ok: 1, fail: 0 });
        }
      } catch (err) {
        // Nothing answered: how many masters there are is unknown, none is seen ok.
        record({ ok: 0, fail: redis instanceof Cluster ? 0 : 1 });
        throw err instanceof AggregateError ? new Error("no Redis cluster node answers") : err;
      }
    },
  };
}

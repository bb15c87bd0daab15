import { Cluster, Redis } from "ioredis";
import type { Config } from "../config/settings.js";

/** A single Redis or a Redis Cluster: the adapters use only commands both answer alike. */
export type RedisClient = Redis | Cluster;

/**
 * The one way to open Redis: a Cluster client on REDIS_CLUSTER_NODES when set (the
 * distributed stack), else the single REDIS_URL (small setups, tests).
 */
export function createRedis(
  config: Pick<Config, "REDIS_URL"> & Partial<Pick<Config, "REDIS_CLUSTER_NODES" | "REDIS_PASSWORD">>,
): RedisClient {
  const nodes = clusterNodes(config.REDIS_CLUSTER_NODES ?? "");
  // (A password in REDIS_URL is used when REDIS_PASSWORD is empty.)
  const auth = config.REDIS_PASSWORD ? { password: config.REDIS_PASSWORD } : {};
  if (nodes.length === 0) {
    return new Redis(config.REDIS_URL, {
      maxRetriesPerRequest: 2,
      enableOfflineQueue: true,
      lazyConnect: false,
      ...auth,
    });
  }
  return new Cluster(nodes, {
    // During a failover the dead master's slots answer CLUSTERDOWN or refuse connections until
    // a replica is promoted; retrying (with a slots refresh in between) rides that out instead
    // of failing every command of the window.
    retryDelayOnClusterDown: 200,
    retryDelayOnFailover: 200,
    retryDelayOnTryAgain: 200,
    maxRedirections: 32,
    slotsRefreshTimeout: 2000,
    enableOfflineQueue: true,
    redisOptions: { maxRetriesPerRequest: 2, ...auth },
  });
}

/** "host:port,host:port" → ioredis startup nodes. */
export function clusterNodes(list: string): { host: string; port: number }[] {
  return list
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "")
    .map((n) => {
      const at = n.lastIndexOf(":");
      return { host: n.slice(0, at), port: Number(n.slice(at + 1)) };
    });
}

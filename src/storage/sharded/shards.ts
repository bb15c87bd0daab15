import type { RowDataPacket } from "mysql2/promise";
import {
  decodeShardMap,
  encodeShardMap,
  evenShardMap,
  instanceOf,
  type ShardInstance,
  type ShardMap,
  slotCounts,
} from "../../../sharding/shard-map.js";
import type { Config } from "../../config/settings.js";
import type { Logger } from "../../log/logger.js";
import { migrate } from "../mysql/migrate.js";
import { createPool, type Pool } from "../mysql/pool.js";

export type ShardSettings = Pick<
  Config,
  "MYSQL_URL" | "MYSQL_SHARDS" | "MYSQL_POOL_SIZE" | "SHARD_SLOTS" | "SHARD_MAP_REFRESH_MS"
>;

/** The configured instances: MYSQL_SHARDS in order (ids s0, s1, ...), or MYSQL_URL alone. */
export function configuredInstances(config: Pick<Config, "MYSQL_URL" | "MYSQL_SHARDS">): ShardInstance[] {
  const urls = config.MYSQL_SHARDS.split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  return (urls.length > 0 ? urls : [config.MYSQL_URL]).map((url, i) => ({ id: `s${i}`, url }));
}

/** Applies sql/ on every instance (each holds its share of every table). */
export async function migrateShards(instances: ShardInstance[], log?: Logger): Promise<void> {
  await Promise.all(instances.map((i) => migrate(i.url, log)));
}

/** The newest stored map, or null when none was stored yet. */
export async function readShardMap(control: Pool): Promise<ShardMap | null> {
  const [rows] = await control.query<RowDataPacket[]>(
    "SELECT version, map_json FROM shard_map ORDER BY version DESC LIMIT 1",
  );
  const row = rows[0];
  return row ? decodeShardMap(Number(row.version), String(row.map_json)) : null;
}

/**
 * Stores `map` as its version unless that version exists (then the stored one wins: several
 * nodes starting together all store version 1, the first insert counts).
 */
export async function storeShardMap(control: Pool, map: ShardMap): Promise<void> {
  await control.query("INSERT IGNORE INTO shard_map (version, map_json, created_at) VALUES (?, ?, ?)", [
    map.version,
    encodeShardMap(map),
    Date.now(),
  ]);
}

/**
 * The shard map and one mysql2 pool per instance. The map lives in the control instance (the
 * first configured one); it is read at open and every SHARD_MAP_REFRESH_MS, so a rebalancer
 * that stores a higher version is followed by every node. An instance's URL comes from this
 * node's MYSQL_SHARDS when it lists the same id (hosts may be named differently per network),
 * else from the map (an instance added by a rebalance).
 */
export class Shards {
  #map: ShardMap;
  readonly #pools = new Map<string, Pool>();
  readonly #configured: Map<string, string>;
  #timer: NodeJS.Timeout | undefined;

  private constructor(
    map: ShardMap,
    private readonly control: Pool,
    configured: ShardInstance[],
    private readonly poolSize: number,
    private readonly log?: Logger,
  ) {
    this.#configured = new Map(configured.map((i) => [i.id, i.url]));
    this.#map = map;
  }

  /**
   * Reads (or, on a fresh control instance, creates) the map. Throws when the stored map was
   * made with another slot count: SHARD_SLOTS is fixed at creation, a change would move keys.
   */
  static async open(config: ShardSettings, log?: Logger): Promise<Shards> {
    const configured = configuredInstances(config);
    const controlInstance = configured[0] as ShardInstance;
    const control = createPool({ MYSQL_URL: controlInstance.url, MYSQL_POOL_SIZE: 2 });
    try {
      let map = await readShardMap(control);
      if (!map) {
        await storeShardMap(control, evenShardMap(configured, config.SHARD_SLOTS));
        map = (await readShardMap(control)) as ShardMap;
      }
      if (map.slots !== config.SHARD_SLOTS) {
        throw new Error(
          `SHARD_SLOTS=${config.SHARD_SLOTS} but the shard map stored on ${controlInstance.id} has ${map.slots} slots (fixed at creation)`,
        );
      }
      const shards = new Shards(map, control, configured, config.MYSQL_POOL_SIZE, log);
      const unmapped = configured.filter((c) => !map.instances.some((i) => i.id === c.id));
      if (unmapped.length > 0) {
        log?.warn({ instances: unmapped.map((i) => i.id) }, "configured instances own no slots until a rebalance");
      }
      log?.info({ version: map.version, slots: Object.fromEntries(slotCounts(map)) }, "shard map loaded");
      shards.#timer = setInterval(() => void shards.refresh(), config.SHARD_MAP_REFRESH_MS);
      shards.#timer.unref();
      return shards;
    } catch (err) {
      await control.end().catch(() => undefined);
      throw err;
    }
  }

  get map(): ShardMap {
    return this.#map;
  }

  /** The instance that owns key (a conversation id, a uid, an index key). */
  instanceFor(key: string): ShardInstance {
    return instanceOf(this.#map, key);
  }

  /** The pool of an instance of the current map, opened on first use. */
  pool(instanceId: string): Pool {
    let pool = this.#pools.get(instanceId);
    if (!pool) {
      const instance = this.#map.instances.find((i) => i.id === instanceId);
      if (!instance) throw new Error(`no shard instance ${instanceId} in map v${this.#map.version}`);
      const url = this.#configured.get(instanceId) ?? instance.url;
      pool = createPool({ MYSQL_URL: url, MYSQL_POOL_SIZE: this.poolSize });
      this.#pools.set(instanceId, pool);
    }
    return pool;
  }

  /** Re-reads the map; keeps the current one when the control instance does not answer. */
  async refresh(): Promise<void> {
    try {
      const latest = await readShardMap(this.control);
      if (latest && latest.version > this.#map.version && latest.slots === this.#map.slots) {
        this.log?.info({ from: this.#map.version, to: latest.version }, "shard map changed");
        this.#map = latest;
      }
    } catch (err) {
      this.log?.warn({ err }, "cannot refresh the shard map; keeping the current one");
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all([...this.#pools.values(), this.control].map((p) => p.end().catch(() => undefined)));
    this.#pools.clear();
  }
}

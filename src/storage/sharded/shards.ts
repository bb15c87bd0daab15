import type { RowDataPacket } from "mysql2/promise";
import type { Config } from "../../config/settings.js";
import { AppError, ErrorCode } from "../../errors.js";
import type { Logger } from "../../log/logger.js";
import { migrate } from "../mysql/migrate.js";
import { createPool, type Pool, type PoolSettings } from "../mysql/pool.js";
import type { Connection } from "../mysql/timeouts.js";
import type { FenceCheck } from "../mysql/transaction.js";
import {
  decodeShardMap,
  encodeShardMap,
  evenShardMap,
  instanceOf,
  type ShardInstance,
  type ShardMap,
  slotCounts,
  slotOf,
  withCredentialsOf,
} from "./shard-map.js";

export type ShardSettings = Pick<
  Config,
  | "MYSQL_URL"
  | "MYSQL_SHARDS"
  | "MYSQL_POOL_SIZE"
  | "SHARD_SLOTS"
  | "SHARD_MAP_REFRESH_MS"
  | "SHARD_FENCE_WAIT_MS"
  | "MYSQL_CONNECT_TIMEOUT_MS"
  | "MYSQL_ACQUIRE_TIMEOUT_MS"
  | "MYSQL_QUERY_TIMEOUT_MS"
>;

/** What every instance's pool is opened with, but its URL. */
type InstancePoolSettings = Omit<PoolSettings, "MYSQL_URL">;

/**
 * A write reached an instance that holds a fence for the key's slot: a rebalance is moving the
 * slot (or has moved it). Retryable: the sharded stores re-read the map and try again.
 */
export class SlotFencedError extends AppError {
  constructor(readonly slots: number[]) {
    super(ErrorCode.SLOT_MOVING, `slot ${slots.join(",")} is being moved by a rebalance; retry shortly`);
  }
}

/**
 * Checks, inside the caller's write transaction, that no fence covers the keys' slots. The
 * shared lock (on the fence row, or on the gap where it would go) is held until the
 * transaction ends, so a rebalancer's fence INSERT waits for this write to commit and every
 * write after the fence sees it: no write can land on the old copy after its last sync.
 */
export type WriteGuard = (conn: Connection, keys: readonly string[]) => Promise<void>;

/** The configured instances: MYSQL_SHARDS in order (ids s0, s1, ...), or MYSQL_URL alone. */
export function configuredInstances(config: Pick<Config, "MYSQL_URL" | "MYSQL_SHARDS">): ShardInstance[] {
  const urls = config.MYSQL_SHARDS.split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  return (urls.length > 0 ? urls : [config.MYSQL_URL]).map((url, i) => ({ id: `s${i}`, url }));
}

/** Applies sql/ on every instance (each holds its share of every table). */
export async function migrateShards(instances: ShardInstance[], log?: Logger): Promise<string[]> {
  return (await Promise.all(instances.map((i) => migrate(i.url, log)))).flat();
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

/** Told the duration (seconds) of every pool-level query on a shard instance. */
export type QueryObserver = (instanceId: string, seconds: number) => void;

/**
 * Times the pool's own query/execute (statements inside a transaction run on a checked-out
 * connection and are not counted one by one).
 */
function timeQueries(pool: Pool, instanceId: string, observe: QueryObserver): void {
  for (const method of ["query", "execute"] as const) {
    const original = pool[method].bind(pool) as (...args: unknown[]) => Promise<unknown>;
    (pool as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
      const start = process.hrtime.bigint();
      try {
        return await original(...args);
      } finally {
        observe(instanceId, Number(process.hrtime.bigint() - start) / 1e9);
      }
    };
  }
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
  /** Whose user and password reach an instance the map names but MYSQL_SHARDS does not. */
  readonly #credentialsFrom: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #observeQuery: QueryObserver | undefined;

  private constructor(
    map: ShardMap,
    private readonly control: Pool,
    configured: ShardInstance[],
    private readonly poolSettings: InstancePoolSettings,
    private readonly fenceWaitMs: number,
    private readonly log?: Logger,
  ) {
    this.#configured = new Map(configured.map((i) => [i.id, i.url]));
    this.#credentialsFrom = configured[0]?.url;
    this.#map = map;
  }

  /**
   * Reads (or, on a fresh control instance, creates) the map. Throws when the stored map was
   * made with another slot count: SHARD_SLOTS is fixed at creation, a change would move keys.
   */
  static async open(config: ShardSettings, log?: Logger, observeQuery?: QueryObserver): Promise<Shards> {
    const configured = configuredInstances(config);
    const controlInstance = configured[0] as ShardInstance;
    const poolSettings: InstancePoolSettings = {
      MYSQL_POOL_SIZE: config.MYSQL_POOL_SIZE,
      MYSQL_CONNECT_TIMEOUT_MS: config.MYSQL_CONNECT_TIMEOUT_MS,
      MYSQL_ACQUIRE_TIMEOUT_MS: config.MYSQL_ACQUIRE_TIMEOUT_MS,
      MYSQL_QUERY_TIMEOUT_MS: config.MYSQL_QUERY_TIMEOUT_MS,
    };
    const control = createPool({ ...poolSettings, MYSQL_URL: controlInstance.url, MYSQL_POOL_SIZE: 2 });
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
      const shards = new Shards(map, control, configured, poolSettings, config.SHARD_FENCE_WAIT_MS, log);
      shards.#observeQuery = observeQuery;
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
      // An instance this process was not configured with (added by a rebalance): the map has
      // no credentials, so this process's own (those of its control instance) are used.
      const url = this.#configured.get(instanceId) ?? withCredentialsOf(instance.url, this.#credentialsFrom);
      pool = createPool({ ...this.poolSettings, MYSQL_URL: url });
      if (this.#observeQuery) timeQueries(pool, instanceId, this.#observeQuery);
      this.#pools.set(instanceId, pool);
    }
    return pool;
  }

  /** The WriteGuard of this map's slot count (see WriteGuard). */
  readonly guard: WriteGuard = async (conn, keys) => {
    const fence = this.fenceCheck(keys);
    if (!fence) return;
    const [rows] = await conn.query<RowDataPacket[]>(fence.sql, fence.params);
    fence.check(rows);
  };

  /** The guard's statement for keys (see FenceCheck); undefined when there are none. */
  readonly fenceCheck = (keys: readonly string[]): FenceCheck | undefined => {
    const slots = [...new Set(keys.map((k) => slotOf(k, this.#map.slots)))];
    if (slots.length === 0) return undefined;
    return {
      sql: "SELECT slot FROM slot_fence WHERE slot IN (?) LOCK IN SHARE MODE",
      params: [slots],
      check: (rows) => {
        if (rows.length > 0) throw new SlotFencedError(rows.map((r) => Number(r.slot)));
      },
    };
  };

  /**
   * Runs a write to instanceId in one transaction behind the guard for keys (the placement
   * keys of the rows it writes).
   */
  async write<T>(instanceId: string, keys: readonly string[], work: (conn: Connection) => Promise<T>): Promise<T> {
    const conn = await this.pool(instanceId).getConnection();
    let reusable = true;
    try {
      await conn.beginTransaction();
      await this.guard(conn, keys);
      const result = await work(conn);
      await conn.commit();
      return result;
    } catch (err) {
      await conn.rollback().catch(() => {
        reusable = false;
      });
      throw err;
    } finally {
      if (reusable) conn.release();
      else conn.destroy();
    }
  }

  /**
   * Runs work (which resolves its instance from the current map each time) again while it
   * meets a fence: the map is re-read at once, so a moved slot's write goes to its new owner;
   * a slot still moving is waited for up to SHARD_FENCE_WAIT_MS, then SLOT_MOVING.
   */
  async retryingFences<T>(work: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.fenceWaitMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        if (!(err instanceof SlotFencedError) || Date.now() >= deadline) throw err;
        await this.refresh();
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(50, 5 * attempt)));
      }
    }
  }

  /** Resolves when the instance answers a trivial query (readiness). */
  async ping(instanceId: string): Promise<void> {
    await this.pool(instanceId).query("SELECT 1");
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

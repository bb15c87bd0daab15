import { crc32 } from "node:zlib";

/** A physical MySQL instance holding some of the slots. `id` is stable; `url` says how to reach it. */
export interface ShardInstance {
  id: string;
  url: string;
}

/**
 * Which physical instance owns each logical slot. It is data, not code: stored versioned in
 * the control instance's `shard_map` table and read by every node, so an instance can be
 * added later by moving slots and bumping the version, without touching the hash.
 */
export interface ShardMap {
  /** Grows by one with every change; nodes keep the highest version they have seen. */
  version: number;
  /** Number of logical slots, fixed when the map is first created. */
  slots: number;
  instances: ShardInstance[];
  /** owner[slot] = index into instances. */
  owner: number[];
}

/**
 * The logical slot of a key: CRC-32 (IEEE, as node:zlib computes it) of the key's UTF-8 bytes,
 * modulo the slot count. CRC-32 is fixed by a standard, so every process, language and
 * version places a key the same way; its spread over short ids is even enough for slots
 * (test/shard-map.test.ts measures it).
 */
export function slotOf(key: string, slots: number): number {
  return crc32(key) % slots;
}

/** The instance that owns key's slot. */
export function instanceOf(map: ShardMap, key: string): ShardInstance {
  const instance = map.instances[map.owner[slotOf(key, map.slots)] ?? -1];
  if (!instance) throw new Error(`shard map v${map.version}: slot of "${key}" has no instance`);
  return instance;
}

/** Version 1: the slots cut into contiguous, equal (±1) ranges, one per instance, in order. */
export function evenShardMap(instances: ShardInstance[], slots: number): ShardMap {
  if (instances.length === 0) throw new RangeError("a shard map needs at least one instance");
  if (!Number.isInteger(slots) || slots < instances.length) {
    throw new RangeError(`slots must be an integer >= the instance count (${instances.length}), got ${slots}`);
  }
  const owner = Array.from({ length: slots }, (_, slot) => Math.floor((slot * instances.length) / slots));
  const map = { version: 1, slots, instances: instances.map((i) => ({ ...i })), owner };
  validateShardMap(map);
  return map;
}

/**
 * A new map (version + 1) in which `slots` belong to instance `toId`, added to the map when it is
 * new (give its url). Every other slot keeps its owner: only the moved slots' data must move.
 */
export function moveSlots(map: ShardMap, slots: readonly number[], to: ShardInstance): ShardMap {
  const instances = map.instances.map((i) => ({ ...i }));
  let index = instances.findIndex((i) => i.id === to.id);
  if (index < 0) index = instances.push({ ...to }) - 1;
  const owner = [...map.owner];
  for (const slot of slots) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= map.slots) throw new RangeError(`no slot ${slot}`);
    owner[slot] = index;
  }
  const moved = { version: map.version + 1, slots: map.slots, instances, owner };
  validateShardMap(moved);
  return moved;
}

/** Slots each instance owns, by instance id (for logs and the rebalancer). */
export function slotCounts(map: ShardMap): Map<string, number> {
  const counts = new Map(map.instances.map((i) => [i.id, 0]));
  for (const index of map.owner) {
    const id = map.instances[index]?.id;
    if (id !== undefined) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/** Throws unless every slot names an existing instance and ids are unique. */
export function validateShardMap(map: ShardMap): void {
  const where = `shard map v${map.version}`;
  if (!Number.isInteger(map.version) || map.version < 1) throw new Error(`${where}: bad version`);
  if (!Number.isInteger(map.slots) || map.slots < 1) throw new Error(`${where}: bad slot count`);
  if (!Array.isArray(map.owner) || map.owner.length !== map.slots) {
    throw new Error(`${where}: owner has ${map.owner?.length} entries for ${map.slots} slots`);
  }
  const ids = new Set<string>();
  for (const instance of map.instances) {
    if (typeof instance.id !== "string" || !instance.id || typeof instance.url !== "string") {
      throw new Error(`${where}: bad instance ${JSON.stringify(instance)}`);
    }
    if (ids.has(instance.id)) throw new Error(`${where}: instance id ${instance.id} twice`);
    ids.add(instance.id);
  }
  for (const index of map.owner) {
    if (!Number.isInteger(index) || index < 0 || index >= map.instances.length) {
      throw new Error(`${where}: a slot names instance #${index}, which does not exist`);
    }
  }
}

/** The stored form (the `map_json` column). */
/**
 * The map as stored: instance URLs without user or password, so no credential sits in a table
 * every service reads (each process reaches an instance with its own, see withCredentialsOf).
 */
export function encodeShardMap(map: ShardMap): string {
  const instances = map.instances.map((i) => ({ ...i, url: withoutCredentials(i.url) }));
  return JSON.stringify({ slots: map.slots, instances, owner: map.owner });
}

/** url without its user and password. */
export function withoutCredentials(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  parsed.username = "";
  parsed.password = "";
  return parsed.toString();
}

/** url with the user and password of `from`, unless it has a user of its own. */
export function withCredentialsOf(url: string, from: string | undefined): string {
  if (!from || !URL.canParse(url) || !URL.canParse(from)) return url;
  const parsed = new URL(url);
  if (parsed.username) return url;
  const source = new URL(from);
  parsed.username = source.username;
  parsed.password = source.password;
  return parsed.toString();
}

/** Parses and validates a stored map; throws on anything malformed rather than routing wrongly. */
export function decodeShardMap(version: number, json: string): ShardMap {
  const parsed = JSON.parse(json) as Partial<ShardMap>;
  const map: ShardMap = {
    version,
    slots: Number(parsed.slots),
    instances: Array.isArray(parsed.instances) ? parsed.instances : [],
    owner: Array.isArray(parsed.owner) ? parsed.owner : [],
  };
  validateShardMap(map);
  return map;
}

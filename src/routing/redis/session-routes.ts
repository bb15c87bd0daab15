import type { Cluster, Redis } from "ioredis";
import type { Uid } from "../../storage/ports.js";
import { DEVICE_NAMES, type DeviceName, type SessionRoute, type SessionRoutes } from "../ports.js";
import { type RedisScript, redisScript } from "./script.js";

/** Deletes the route only while it still names this session (a newer login keeps its own). */
const UNBIND_IF_SESSION = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local ok, route = pcall(cjson.decode, current)
if ok and type(route) == 'table' and route.sessionId == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/**
 * Renews this session's route; rewrites it if it vanished (expired during a stall, Redis
 * failover). Answers 0 when another session owns the uid: this one was replaced.
 */
const REFRESH_IF_SESSION = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, route = pcall(cjson.decode, current)
  if not (ok and type(route) == 'table' and route.sessionId == ARGV[2]) then return 0 end
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1`;

/**
 * (uid, device kind) → {nodeId, sessionId} in Redis, one key per uid and device ("route:<uid>"
 * for a desktop, "route:<uid>:web", "route:<uid>:mobile"), so routes spread over a Redis
 * Cluster and every script touches one key.
 * With ttlSeconds > 0 every route expires unless its node refreshes it, so the routes of a
 * node that died without unbinding disappear by themselves instead of pointing at it forever.
 */
export class RedisSessionRoutes implements SessionRoutes {
  /** The scripts, sent by SHA after their first use on a connection. */
  readonly #run: Record<"UNBIND_IF_SESSION" | "REFRESH_IF_SESSION", RedisScript>;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keyPrefix: string,
    private readonly ttlSeconds = 0,
  ) {
    this.#run = {
      UNBIND_IF_SESSION: redisScript(this.redis, UNBIND_IF_SESSION, 1),
      REFRESH_IF_SESSION: redisScript(this.redis, REFRESH_IF_SESSION, 1),
    };
  }

  async bind(uid: Uid, route: SessionRoute): Promise<SessionRoute | null> {
    const value = encodeRoute(route);
    const key = this.key(uid, route.device);
    // SET ... GET swaps in one step: two logins racing each see the route they replaced.
    const previous =
      this.ttlSeconds > 0
        ? await this.redis.set(key, value, "EX", this.ttlSeconds, "GET")
        : await this.redis.set(key, value, "GET");
    return decodeRoute(previous);
  }

  async unbind(uid: Uid, sessionId: string, device?: DeviceName): Promise<void> {
    const devices = device ? [device] : DEVICE_NAMES;
    await Promise.all(devices.map((d) => this.#run.UNBIND_IF_SESSION(this.key(uid, d), sessionId)));
  }

  /**
   * Keeps a live session's route from expiring (call it on each client heartbeat). Answers
   * false when another session has taken the uid: this session should be closed.
   */
  async refresh(uid: Uid, route: SessionRoute): Promise<boolean> {
    const kept = await this.#run.REFRESH_IF_SESSION(
      this.key(uid, route.device),
      encodeRoute(route),
      route.sessionId,
      String(this.ttlSeconds),
    );
    return kept === 1;
  }

  async lookup(uids: Uid[]): Promise<Map<Uid, SessionRoute>> {
    const all = await this.lookupAll(uids);
    return new Map([...all].map(([uid, routes]) => [uid, routes[0] as SessionRoute]));
  }

  async lookupAll(uids: Uid[]): Promise<Map<Uid, SessionRoute[]>> {
    const unique = [...new Set(uids)];
    // Single-key GETs sent together, not MGET: on a Redis Cluster the keys live in different
    // slots, which a multi-key command (or an ioredis pipeline) refuses.
    const values = await Promise.all(
      unique.flatMap((uid) => DEVICE_NAMES.map((device) => this.redis.get(this.key(uid, device)))),
    );
    const routes = new Map<Uid, SessionRoute[]>();
    unique.forEach((uid, i) => {
      const found: SessionRoute[] = [];
      DEVICE_NAMES.forEach((_, d) => {
        const route = decodeRoute(values[i * DEVICE_NAMES.length + d]);
        if (route) found.push(route);
      });
      if (found.length > 0) routes.set(uid, found);
    });
    return routes;
  }

  /** A desktop route keeps the key of the single-device version ("route:<uid>"). */
  private key(uid: Uid, device: DeviceName = "desktop"): string {
    return device === "desktop" ? `${this.keyPrefix}route:${uid}` : `${this.keyPrefix}route:${uid}:${device}`;
  }
}

function encodeRoute(route: SessionRoute): string {
  return JSON.stringify({ nodeId: route.nodeId, sessionId: route.sessionId, device: route.device });
}

/** A value that is not a route (foreign or corrupt) counts as no route. */
function decodeRoute(value: string | null | undefined): SessionRoute | null {
  if (!value) return null;
  try {
    const parsed: unknown = JSON.parse(value);
    if (typeof parsed !== "object" || parsed === null) return null;
    const { nodeId, sessionId, device } = parsed as Record<string, unknown>;
    if (typeof nodeId !== "string" || typeof sessionId !== "string") return null;
    return DEVICE_NAMES.includes(device as DeviceName)
      ? { nodeId, sessionId, device: device as DeviceName }
      : { nodeId, sessionId };
  } catch {
    return null;
  }
}

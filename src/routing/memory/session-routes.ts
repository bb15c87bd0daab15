import type { Uid } from "../../storage/ports.js";
import { DEVICE_NAMES, type DeviceName, type SessionRoute, type SessionRoutes } from "../ports.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/**
 * (uid, device kind) → {nodeId, sessionId} for the chat nodes of this process. With ttlSeconds > 0 a route
 * expires unless refreshed, exactly as RedisSessionRoutes; 0: routes never expire.
 */
export class MemorySessionRoutes implements SessionRoutes {
  readonly #routes: ExpiringMap<string, SessionRoute>;

  constructor(
    private readonly ttlSeconds = 0,
    clock: Clock = systemClock,
  ) {
    this.#routes = new ExpiringMap(clock);
  }

  async bind(uid: Uid, route: SessionRoute): Promise<SessionRoute | null> {
    const previous = this.#routes.get(key(uid, route.device)) ?? null;
    this.#set(uid, route);
    return previous ? { ...previous } : null;
  }

  async unbind(uid: Uid, sessionId: string, device?: DeviceName): Promise<void> {
    for (const d of device ? [device] : DEVICE_NAMES) {
      if (this.#routes.get(key(uid, d))?.sessionId === sessionId) this.#routes.delete(key(uid, d));
    }
  }

  /**
   * Keeps a live session's route from expiring, writing it back if it vanished. Answers false
   * when another session has taken the uid: this session should be closed.
   */
  async refresh(uid: Uid, route: SessionRoute): Promise<boolean> {
    const current = this.#routes.get(key(uid, route.device));
    if (current && current.sessionId !== route.sessionId) return false;
    this.#set(uid, route);
    return true;
  }

  async lookup(uids: Uid[]): Promise<Map<Uid, SessionRoute>> {
    const all = await this.lookupAll(uids);
    return new Map([...all].map(([uid, routes]) => [uid, routes[0] as SessionRoute]));
  }

  async lookupAll(uids: Uid[]): Promise<Map<Uid, SessionRoute[]>> {
    const found = new Map<Uid, SessionRoute[]>();
    for (const uid of uids) {
      const routes = DEVICE_NAMES.flatMap((d) => {
        const route = this.#routes.get(key(uid, d));
        return route ? [{ ...route }] : [];
      });
      if (routes.length > 0) found.set(uid, routes);
    }
    return found;
  }

  #set(uid: Uid, route: SessionRoute): void {
    const ttlMs = this.ttlSeconds > 0 ? this.ttlSeconds * 1000 : Number.POSITIVE_INFINITY;
    const stored: SessionRoute = { nodeId: route.nodeId, sessionId: route.sessionId };
    if (route.device) stored.device = route.device;
    this.#routes.set(key(uid, route.device), stored, ttlMs);
  }
}

function key(uid: Uid, device: DeviceName = "desktop"): string {
  return `${uid}/${device}`;
}

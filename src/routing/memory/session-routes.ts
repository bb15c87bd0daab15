import type { Uid } from "../../storage/ports.js";
import type { SessionRoute, SessionRoutes } from "../ports.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/**
 * uid → {nodeId, sessionId} for the chat nodes of this process. With ttlSeconds > 0 a route
 * expires unless refreshed, exactly as RedisSessionRoutes; 0: routes never expire.
 */
export class MemorySessionRoutes implements SessionRoutes {
  readonly #routes: ExpiringMap<Uid, SessionRoute>;

  constructor(
    private readonly ttlSeconds = 0,
    clock: Clock = systemClock,
  ) {
    this.#routes = new ExpiringMap(clock);
  }

  async bind(uid: Uid, route: SessionRoute): Promise<SessionRoute | null> {
    const previous = this.#routes.get(uid) ?? null;
    this.#set(uid, route);
    return previous ? { ...previous } : null;
  }

  async unbind(uid: Uid, sessionId: string): Promise<void> {
    if (this.#routes.get(uid)?.sessionId === sessionId) this.#routes.delete(uid);
  }

  /**
   * Keeps a live session's route from expiring, writing it back if it vanished. Answers false
   * when another session has taken the uid: this session should be closed.
   */
  async refresh(uid: Uid, route: SessionRoute): Promise<boolean> {
    const current = this.#routes.get(uid);
    if (current && current.sessionId !== route.sessionId) return false;
    this.#set(uid, route);
    return true;
  }

  async lookup(uids: Uid[]): Promise<Map<Uid, SessionRoute>> {
    const found = new Map<Uid, SessionRoute>();
    for (const uid of uids) {
      const route = this.#routes.get(uid);
      if (route) found.set(uid, { ...route });
    }
    return found;
  }

  #set(uid: Uid, route: SessionRoute): void {
    const ttlMs = this.ttlSeconds > 0 ? this.ttlSeconds * 1000 : Number.POSITIVE_INFINITY;
    this.#routes.set(uid, { nodeId: route.nodeId, sessionId: route.sessionId }, ttlMs);
  }
}

import type { DeviceName } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import type { Session } from "./session.js";

/**
 * The node's local sessions, by session id and by uid: one session per uid and device kind
 * (a user may be on a desktop and a browser at once; a second desktop replaces the first).
 */
export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  /**
   * A user's sessions: the session itself while there is one (nearly every user; its device
   * kind is its `device`), by device kind once there are more. A map per user would cost each
   * idle session ~180 bytes.
   */
  private readonly byUid = new Map<Uid, Session | Map<DeviceName, Session>>();
  /** Sessions here that have logged in (the others are waiting for their login). */
  #loggedIn = 0;

  add(session: Session): void {
    this.byId.set(session.id, session);
  }

  /** Forgets the session; its uid entry only if it still points at this session. */
  remove(session: Session): void {
    if (this.byId.delete(session.id) && session.uid !== undefined) this.#loggedIn -= 1;
    this.unlink(session);
  }

  /** Makes `session` the one of `uid` on `device`; answers the local session of that device it replaced, if any. */
  bindUid(session: Session, uid: Uid, device: DeviceName = "desktop"): Session | undefined {
    if (session.uid === undefined && this.byId.has(session.id)) this.#loggedIn += 1;
    const entry = this.byUid.get(uid);
    let previous: Session | undefined;
    if (entry === undefined) this.byUid.set(uid, session);
    else if (entry instanceof Map) {
      previous = entry.get(device);
      entry.set(device, session);
    } else if (entry.device === device) {
      previous = entry;
      this.byUid.set(uid, session);
    } else {
      this.byUid.set(
        uid,
        new Map([
          [entry.device ?? "desktop", entry],
          [device, session],
        ]),
      );
    }
    session.uid = uid;
    session.device = device;
    return previous === session ? undefined : previous;
  }

  /** Undoes bindUid (a login that failed half-way). */
  unbindUid(session: Session): void {
    if (session.uid !== undefined && this.byId.has(session.id)) this.#loggedIn -= 1;
    this.unlink(session);
    session.uid = undefined;
  }

  get(sessionId: string): Session | undefined {
    return this.byId.get(sessionId);
  }

  /** Every live session of uid here (one per device kind). */
  sessionsOf(uid: Uid): Session[] {
    const entry = this.byUid.get(uid);
    if (entry === undefined) return [];
    return entry instanceof Map ? [...entry.values()] : [entry];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Sessions that have not logged in yet. */
  get pendingLogins(): number {
    return this.byId.size - this.#loggedIn;
  }

  all(): Session[] {
    return [...this.byId.values()];
  }

  private unlink(session: Session): void {
    if (session.uid === undefined) return;
    const entry = this.byUid.get(session.uid);
    if (entry === session) {
      this.byUid.delete(session.uid);
      return;
    }
    if (!(entry instanceof Map)) return;
    for (const [device, s] of entry) if (s === session) entry.delete(device);
    if (entry.size === 0) this.byUid.delete(session.uid);
    else if (entry.size === 1) {
      const [device, left] = entry.entries().next().value as [DeviceName, Session];
      // Back to the session itself when its device is the one it is kept under.
      if (left.device === device) this.byUid.set(session.uid, left);
    }
  }
}

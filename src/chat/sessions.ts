import type { DeviceName } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import type { Session } from "./session.js";

/**
 * The node's local sessions, by session id and by uid: one session per uid and device kind
 * (a user may be on a desktop and a browser at once; a second desktop replaces the first).
 */
export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly byUid = new Map<Uid, Map<DeviceName, Session>>();

  add(session: Session): void {
    this.byId.set(session.id, session);
  }

  /** Forgets the session; its uid entry only if it still points at this session. */
  remove(session: Session): void {
    this.byId.delete(session.id);
    this.unlink(session);
  }

  /** Makes `session` the one of `uid` on `device`; answers the local session of that device it replaced, if any. */
  bindUid(session: Session, uid: Uid, device: DeviceName = "desktop"): Session | undefined {
    let devices = this.byUid.get(uid);
    if (!devices) {
      devices = new Map();
      this.byUid.set(uid, devices);
    }
    const previous = devices.get(device);
    session.uid = uid;
    session.device = device;
    devices.set(device, session);
    return previous === session ? undefined : previous;
  }

  /** Undoes bindUid (a login that failed half-way). */
  unbindUid(session: Session): void {
    this.unlink(session);
    session.uid = undefined;
  }

  get(sessionId: string): Session | undefined {
    return this.byId.get(sessionId);
  }

  /** Every live session of uid here (one per device kind). */
  sessionsOf(uid: Uid): Session[] {
    const devices = this.byUid.get(uid);
    return devices ? [...devices.values()] : [];
  }

  get size(): number {
    return this.byId.size;
  }

  all(): Session[] {
    return [...this.byId.values()];
  }

  private unlink(session: Session): void {
    if (session.uid === undefined) return;
    const devices = this.byUid.get(session.uid);
    if (!devices) return;
    for (const [device, s] of devices) if (s === session) devices.delete(device);
    if (devices.size === 0) this.byUid.delete(session.uid);
  }
}

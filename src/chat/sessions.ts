import type { Uid } from "../storage/ports.js";
import type { Session } from "./session.js";

/** The node's local sessions, by session id and by uid (one session per uid in this version). */
export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly byUid = new Map<Uid, Session>();

  add(session: Session): void {
    this.byId.set(session.id, session);
  }

  /** Forgets the session; its uid entry only if it still points at this session. */
  remove(session: Session): void {
    this.byId.delete(session.id);
    if (session.uid !== undefined && this.byUid.get(session.uid) === session) this.byUid.delete(session.uid);
  }

  /** Makes `session` the one of `uid`; answers the local session it replaced, if any. */
  bindUid(session: Session, uid: Uid): Session | undefined {
    const previous = this.byUid.get(uid);
    session.uid = uid;
    this.byUid.set(uid, session);
    return previous === session ? undefined : previous;
  }

  /** Undoes bindUid (a login that failed half-way). */
  unbindUid(session: Session): void {
    if (session.uid !== undefined && this.byUid.get(session.uid) === session) this.byUid.delete(session.uid);
    session.uid = undefined;
  }

  get(sessionId: string): Session | undefined {
    return this.byId.get(sessionId);
  }

  ofUid(uid: Uid): Session | undefined {
    return this.byUid.get(uid);
  }

  get size(): number {
    return this.byId.size;
  }

  all(): Session[] {
    return [...this.byId.values()];
  }
}

import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import type { Uid } from "../storage/ports.js";
import type { OutboundFrame } from "./outbound.js";
import type { Session } from "./session.js";

/** A message push as sessions get it: its place in the conversation and its encoded frame. */
export interface MessagePush {
  convId: string;
  seq: number;
  frame: OutboundFrame;
}

interface Entry {
  push: MessagePush;
  dueAtMs: number;
}

/** What a closed session left unacked, waiting for its user to log in here again. */
interface Orphans {
  pushes: MessagePush[];
  expiresAtMs: number;
}

/**
 * The at-least-once half of delivery: every message pushed to a session is remembered until
 * that session acks it (AckRequest cursors), and pushed again each CHAT_PUSH_ACK_TIMEOUT_MS
 * until then. A push lost on the way (a dropped connection, a client that crashed before
 * acking) therefore comes back; the client drops repeats by (convId, seq). Memory is bounded
 * per session (CHAT_UNACKED_PUSH_MAX, oldest forgotten first): a forgotten push still reaches
 * the client by sync, since the user's cursor only moves on acks.
 *
 * What a session leaves unacked when it closes is kept for CHAT_UNACKED_RETAIN_MS and pushed
 * to the user's next session on this node (the ring sends a user back to the same node), right
 * after its login reply: a reconnecting client gets its unacked pushes again without asking.
 */
export class UnackedPushes {
  readonly #bySession = new Map<Session, Map<string, Entry>>();
  readonly #orphans = new Map<Uid, Orphans>();
  #timer: NodeJS.Timeout | undefined;
  /** Pushes sent again after their timeout (for tests and logs). */
  repushed = 0;

  constructor(
    private readonly timeoutMs: number,
    private readonly maxPerSession: number,
    private readonly retainMs: number,
  ) {}

  /** Called for each message push written to a session. */
  pushed(session: Session, push: MessagePush, now = Date.now()): void {
    if (session.closed) return;
    let entries = this.#bySession.get(session);
    if (!entries) {
      entries = new Map();
      this.#bySession.set(session, entries);
      session.onClose(() => this.orphan(session));
    }
    const key = `${push.convId}\n${push.seq}`;
    entries.delete(key);
    entries.set(key, { push, dueAtMs: now + this.timeoutMs });
    // Map order is insertion order: the first key is the oldest push.
    while (entries.size > this.maxPerSession) {
      const oldest = entries.keys().next().value as string;
      entries.delete(oldest);
    }
  }

  /** The session has everything up to seq in each conversation. */
  acked(session: Session, cursors: { convId: string; seq: number }[]): void {
    const entries = this.#bySession.get(session);
    if (!entries) return;
    const upTo = new Map(cursors.map((c) => [c.convId, c.seq]));
    for (const [key, entry] of entries) {
      const seq = upTo.get(entry.push.convId);
      if (seq !== undefined && entry.push.seq <= seq) entries.delete(key);
    }
  }

  /**
   * A session of `session.uid` logged in: pushes what an earlier session of the user left
   * unacked here, after the login reply has been written.
   */
  resume(session: Session): void {
    const uid = session.uid;
    if (uid === undefined || !this.#orphans.has(uid)) return;
    setImmediate(() => {
      const left = this.#orphans.get(uid);
      if (!left || session.closed) return;
      this.#orphans.delete(uid);
      for (const push of left.pushes) {
        session.send(push.frame);
        this.pushed(session, push);
      }
    });
  }

  private orphan(session: Session): void {
    const entries = this.#bySession.get(session);
    this.#bySession.delete(session);
    if (!entries || entries.size === 0 || session.uid === undefined) return;
    const earlier = this.#orphans.get(session.uid)?.pushes ?? [];
    const pushes = [...earlier, ...[...entries.values()].map((e) => e.push)].slice(-this.maxPerSession);
    this.#orphans.set(session.uid, { pushes, expiresAtMs: Date.now() + this.retainMs });
  }

  /** Unacked pushes of a session (tests). */
  waiting(session: Session): ChatMessage[] {
    return [...(this.#bySession.get(session)?.values() ?? [])].flatMap((e) => {
      const body = e.push.frame.envelope.body;
      return body?.$case === "messagePush" && body.value.message ? [body.value.message] : [];
    });
  }

  /** Pushes again whatever is due, oldest first per session. */
  repushDue(now = Date.now()): void {
    for (const [uid, left] of this.#orphans) if (left.expiresAtMs <= now) this.#orphans.delete(uid);
    for (const [session, entries] of this.#bySession) {
      if (session.closed) {
        this.orphan(session);
        continue;
      }
      for (const entry of entries.values()) {
        if (entry.dueAtMs > now) continue;
        entry.dueAtMs = now + this.timeoutMs;
        this.repushed += 1;
        session.send(entry.push.frame);
      }
    }
  }

  start(): void {
    const every = Math.max(10, Math.min(1000, Math.floor(this.timeoutMs / 4)));
    this.#timer = setInterval(() => this.repushDue(), every);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#bySession.clear();
    this.#orphans.clear();
  }
}

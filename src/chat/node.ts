import type { Envelope } from "../../packages/protocol/src/wire.js";
import { AppError, codeOf, ErrorCode } from "../errors.js";
import { sampled } from "../log/logger.js";
import type { Uid } from "../storage/ports.js";
import { ActSession } from "./act-session.js";
import type { HandlerContext } from "./handlers/context.js";
import { dispatch, type HandlerTable, servedHandlers } from "./handlers/dispatch.js";
import { type Lane, SessionInbox } from "./inbox.js";
import { announcePresence } from "./presence.js";
import { errorEnvelope, failSession, kickSession, type Session } from "./session.js";

/**
 * Which lane a request waits in (see SessionInbox). Before login everything waits for the
 * login; a sender's messages wait for its earlier ones to the same conversation only.
 */
export function laneOf(session: Session, envelope: Envelope): Lane {
  const body = envelope.body;
  if (session.uid === undefined || body === undefined || body.$case === "loginReq") return { kind: "barrier" };
  switch (body.$case) {
    case "sendReq":
      return { kind: "lane", name: `to:${body.value.toUid}` };
    case "groupSendReq":
      return { kind: "lane", name: `group:${body.value.groupId}` };
    // A forward is a send to its target, in the target's order.
    case "forwardReq": {
      const { toUid, groupId } = body.value;
      return { kind: "lane", name: groupId !== "" && groupId !== "0" ? `group:${groupId}` : `to:${toUid}` };
    }
    // Typing is best effort and never waits behind a send.
    case "typingReq":
    case "heartbeatReq":
    case "ackReq":
    case "syncReq":
    case "historyReq":
      return { kind: "free" };
    default:
      // Friend, group and conversation requests keep their order among themselves.
      return { kind: "lane", name: "control" };
  }
}

/**
 * The transport-independent core of a chat node: admits sessions, runs each session's
 * requests pipelined in their lanes (a login completes before the frames behind it; a
 * client's messages to one conversation are stored in the order it sent them, other requests
 * run beside them), and sweeps idle sessions.
 */
export class ChatNode {
  private readonly inboxes = new WeakMap<Session, SessionInbox>();
  /** Open connections per client address (CHAT_MAX_CONNECTIONS_PER_ADDR set). */
  private readonly perAddress = new Map<string, number>();
  private readonly pending = new Set<Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;

  readonly ctx: HandlerContext;
  /** The requests this node serves (groups, friends and conversation lists need their stores). */
  private readonly handlers: HandlerTable;

  constructor(deps: Omit<HandlerContext, "background">) {
    this.ctx = { ...deps, background: (task) => this.track(task) };
    this.handlers = servedHandlers(this.ctx);
  }

  /** For transports: a new connection. False when the node is full (the session is closed). */
  attach(session: Session): boolean {
    const { sessions, config, log } = this.ctx;
    if (sessions.size >= config.CHAT_MAX_SESSIONS || sessions.pendingLogins >= config.CHAT_MAX_PENDING_LOGINS) {
      log.warn(sampled({ remote: session.remote, pendingLogins: sessions.pendingLogins }), "session limit reached");
      failSession(session, ErrorCode.UNAVAILABLE, "this chat node is full");
      return false;
    }
    const cap = config.CHAT_MAX_CONNECTIONS_PER_ADDR;
    if (cap > 0) {
      const host = session.remoteHost;
      const open = this.perAddress.get(host) ?? 0;
      if (open >= cap) {
        log.info(sampled({ host }), "connection cap of an address reached");
        failSession(session, ErrorCode.RATE_LIMITED, `over ${cap} connections from this address`);
        return false;
      }
      this.perAddress.set(host, open + 1);
      session.onClose(() => {
        const left = (this.perAddress.get(host) ?? 1) - 1;
        if (left > 0) this.perAddress.set(host, left);
        else this.perAddress.delete(host);
      });
    }
    sessions.add(session);
    this.ctx.metrics.connections.inc({ transport: session.transport });
    this.inboxes.set(session, new SessionInbox());
    session.onClose((reason) => this.detach(session, reason));
    return true;
  }

  /** For transports: one decoded frame. */
  handle(session: Session, envelope: Envelope): void {
    const inbox = this.inboxes.get(session);
    if (!inbox || session.closed) return;
    session.lastActivityMs = Date.now();
    if (inbox.inFlight >= this.ctx.config.CHAT_MAX_IN_FLIGHT) {
      // Before login there is nothing to keep: a client flooding its login is cut off.
      if (session.uid === undefined) failSession(session, ErrorCode.RATE_LIMITED, "too many frames before login");
      else session.send(errorEnvelope(envelope.reqId, ErrorCode.RATE_LIMITED, "too many requests in flight"));
      return;
    }
    const task = inbox.admit(laneOf(session, envelope), async (turn) => {
      try {
        if (!session.closed) await dispatch(this.ctx, this.handlers, session, envelope, turn);
      } catch (err) {
        this.ctx.log.error(sampled({ err, sessionId: session.id }), "dispatch failed");
      }
    });
    this.track(task);
  }

  /**
   * The Server API (ChatNodeService.Act, issue 18): runs one request as uid through the same
   * handlers as a client's, on a session with no connection, and answers its reply. Its pushes
   * go out as a client's would (to the recipients, and to uid's own sessions here).
   */
  async act(uid: Uid, envelope: Envelope, privileged: boolean): Promise<Envelope> {
    const session = new ActSession(uid, privileged, envelope.reqId);
    const task = dispatch(this.ctx, this.handlers, session, envelope);
    this.track(task);
    await task;
    session.settle();
    return session.reply;
  }

  /** For transports: bytes that are not a frame. The stream cannot be trusted after that. */
  reject(session: Session, err: unknown): void {
    const code = err instanceof AppError ? codeOf(err) : ErrorCode.MALFORMED_FRAME;
    this.ctx.log.info(sampled({ sessionId: session.id, remote: session.remote, code }), "bad frame; closing");
    failSession(session, code, err instanceof Error ? err.message : "bad frame");
  }

  /** Background work (deliveries, route cleanup) that close() waits for. */
  track(task: Promise<void>): void {
    this.pending.add(task);
    void task.finally(() => this.pending.delete(task));
  }

  /** One timer for the whole node: login deadlines, token expiries and idle timeouts. */
  startSweeping(): void {
    const { CHAT_IDLE_TIMEOUT_MS, CHAT_LOGIN_TIMEOUT_MS } = this.ctx.config;
    const every = Math.min(1000, Math.max(20, Math.floor(Math.min(CHAT_IDLE_TIMEOUT_MS, CHAT_LOGIN_TIMEOUT_MS) / 4)));
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), every);
    this.sweepTimer.unref();
  }

  sweep(now: number): void {
    const { CHAT_IDLE_TIMEOUT_MS, CHAT_LOGIN_TIMEOUT_MS } = this.ctx.config;
    for (const session of this.ctx.sessions.all()) {
      if (session.uid === undefined && now - session.openedAtMs >= CHAT_LOGIN_TIMEOUT_MS) {
        failSession(session, ErrorCode.NOT_LOGGED_IN, "no login in time");
      } else if (session.tokenExpiresAtMs > 0 && now >= session.tokenExpiresAtMs) {
        // A session lives no longer than the token it logged in with: log in again.
        kickSession(session, ErrorCode.TOKEN_EXPIRED, "the login token expired");
      } else if (now - session.lastActivityMs >= CHAT_IDLE_TIMEOUT_MS) {
        kickSession(session, ErrorCode.IDLE_TIMEOUT, "idle for too long");
      }
    }
  }

  /** Stops sweeping, closes every session and waits for the work they started. */
  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    for (const session of this.ctx.sessions.all()) session.close(ErrorCode.UNAVAILABLE, "chat node shutting down");
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private detach(session: Session, reason: ErrorCode | undefined): void {
    const { sessions, routes, log } = this.ctx;
    sessions.remove(session);
    this.ctx.metrics.connections.dec({ transport: session.transport });
    log.debug({ sessionId: session.id, uid: session.uid, reason }, "session closed");
    const uid = session.uid;
    if (uid === undefined) return;
    this.track(
      routes.unbind(uid, session.id, session.device).then(
        // The user's last device gone: friends are told (announcePresence checks the routes).
        () => announcePresence(this.ctx, uid, false),
        (err: unknown) => {
          // The route then points at a dead session until its TTL; deliveries to it are dropped.
          log.warn(sampled({ err, uid }), "cannot remove the session route");
        },
      ),
    );
  }
}

import { nanoid } from "nanoid";
import type { Envelope, NodeAddress } from "../../packages/protocol/src/wire.js";
import type { ErrorCode } from "../errors.js";
import type { DeviceName } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import { OutboundFrame } from "./outbound.js";

/** "api": a request the Server API runs on a node (ActSession), with no connection. */
export type TransportKind = "tcp" | "ws" | "api";

/**
 * One client connection as the node sees it. Transports only move frames; handlers never
 * know which transport a session uses.
 */
export interface Session {
  readonly id: string;
  readonly transport: TransportKind;
  readonly remote: string;
  readonly openedAtMs: number;
  readonly closed: boolean;
  /** Set once login succeeded. */
  uid?: Uid;
  /** The device kind the login claimed (one session per uid and device kind); set with uid. */
  device?: DeviceName;
  /**
   * The Server API acting as uid (issue 18, ActSession): it recalls any message, manages any
   * group whatever uid's role, adds members without their consent, and skips the per-user limits.
   */
  readonly privileged?: boolean;
  /** The client's address without its port (what per-address caps count). */
  readonly remoteHost: string;
  /** Date.now() of the last frame received; the idle sweep reads it. */
  lastActivityMs: number;
  /** Date.now() of the last write of this session's route (its login, then heartbeats' renewals). */
  routeRenewedAtMs: number;
  /** When the login token expires (0 before login): the session ends then, TOKEN_EXPIRED. */
  tokenExpiresAtMs: number;
  /** Drops the envelope when the session is closed. A frame already encoded is written as it is. */
  send(envelope: Envelope | OutboundFrame): void;
  /** Flushes what was sent, then closes; `reason` is logged and, on WebSocket, put in the close frame. */
  close(reason?: ErrorCode, message?: string): void;
  /** Runs once, when the session closes for any reason (either side). */
  onClose(listener: (reason: ErrorCode | undefined) => void): void;
}

type CloseListener = (reason: ErrorCode | undefined) => void;

/** The bookkeeping every transport shares: id, activity, one-time close with listeners. */
export abstract class BaseSession implements Session {
  readonly id = nanoid();
  readonly openedAtMs = Date.now();
  uid?: Uid;
  device?: DeviceName;
  lastActivityMs = this.openedAtMs;
  routeRenewedAtMs = this.openedAtMs;
  tokenExpiresAtMs = 0;
  private isClosed = false;
  /**
   * A session has one close listener (the node's) unless messages were pushed to it: the
   * first is held without an array, which would cost an idle session ~180 bytes.
   */
  private closeListeners: CloseListener | CloseListener[] | undefined;
  #remote: string | undefined;

  /** `remote` unset: read from the connection when first asked (see peerAddress). */
  constructor(
    readonly transport: TransportKind,
    remote?: string,
  ) {
    this.#remote = remote;
  }

  /**
   * Only log lines read it, and few sessions ever get one: the address string, and the peer
   * address object net.Socket caches once asked, are only made then.
   */
  get remote(): string {
    this.#remote ??= this.peerAddress();
    return this.#remote;
  }

  get remoteHost(): string {
    const remote = this.remote;
    const colon = remote.lastIndexOf(":");
    return colon < 0 ? remote : remote.slice(0, colon);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(envelope: Envelope | OutboundFrame): void {
    if (!this.isClosed) this.write(envelope instanceof OutboundFrame ? envelope : OutboundFrame.of(envelope));
  }

  close(reason?: ErrorCode, message?: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.shutdown(reason, message);
    this.fireClose(reason);
  }

  onClose(listener: CloseListener): void {
    const current = this.closeListeners;
    if (current === undefined) this.closeListeners = listener;
    else if (typeof current === "function") this.closeListeners = [current, listener];
    else current.push(listener);
  }

  /** For the transport: the connection went away without close() (peer left, socket error). */
  protected ended(reason?: ErrorCode): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.fireClose(reason);
  }

  private fireClose(reason: ErrorCode | undefined): void {
    // Taken before they run: a closed session keeps nothing its listeners captured, and one
    // added while they run is never called (the session has already closed).
    const listeners = this.closeListeners;
    this.closeListeners = undefined;
    if (typeof listeners === "function") listeners(reason);
    else if (listeners) for (const listener of listeners) listener(reason);
  }

  /** The remote address as "host:port", for sessions made without one. */
  protected peerAddress(): string {
    return "";
  }

  protected abstract write(frame: OutboundFrame): void;
  protected abstract shutdown(reason?: ErrorCode, message?: string): void;
}

export function errorEnvelope(reqId: number, code: ErrorCode, message = "", redirect?: NodeAddress): Envelope {
  return { reqId, body: { $case: "error", value: { code, message, redirect } } };
}

/** Tells the client why, then closes: the way every fatal session error ends. */
export function failSession(session: Session, code: ErrorCode, message = "", reqId = 0, redirect?: NodeAddress): void {
  session.send(errorEnvelope(reqId, code, message, redirect));
  session.close(code, message);
}

/** A kickPush, then close: logged in elsewhere, idle, node shutting down. */
export function kickSession(session: Session, reason: ErrorCode, message: string): void {
  session.send({ reqId: 0, body: { $case: "kickPush", value: { reason, message } } });
  session.close(reason, message);
}

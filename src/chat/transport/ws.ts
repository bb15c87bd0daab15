import type { Socket } from "node:net";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { BadFieldValueError, decodeEnvelope, envelopeFromJson } from "../../../packages/protocol/src/frame.js";
import type { Envelope } from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode, errorName } from "../../errors.js";
import type { Logger } from "../../log/logger.js";
import type { ChatNode } from "../node.js";
import type { OutboundFrame } from "../outbound.js";
import { BaseSession, errorEnvelope } from "../session.js";
import type { TransportLimits } from "./tcp.js";

/** Close code of a session the node ends on purpose; the reason is the error name (e.g. "KICKED"). */
export const WS_CLOSE_APP = 4000;

/**
 * The ws library's socket, built by it (the server's `WebSocket` option) with a slot for its
 * session: one listener function per event then serves every socket, where a closure per
 * socket and event cost an idle connection several hundred bytes.
 */
class SessionSocket extends WebSocket {
  session: WsSession | undefined = undefined;
}

/**
 * A session over one WebSocket: one Envelope per message, binary (protobuf) or text
 * (canonical JSON). The node answers in the format the client last used.
 */
class WsSession extends BaseSession {
  format: "binary" | "text" = "binary";
  private corked = false;

  constructor(
    private readonly socket: SessionSocket,
    private readonly limits: TransportLimits,
    private readonly log: Logger,
  ) {
    super("ws");
    socket.session = this;
  }

  /** The socket closed, whichever side began. */
  socketClosed(): void {
    this.ended();
  }

  /**
   * Asked only while the connection is up (a log line about a frame or an admission), when
   * the socket still knows its peer.
   */
  protected override peerAddress(): string {
    const raw = this.rawSocket();
    return `${raw?.remoteAddress}:${raw?.remotePort}`;
  }

  /** ws's own net.Socket under the WebSocket (`_socket`). */
  private rawSocket(): Socket | undefined {
    return (this.socket as unknown as { _socket?: Socket })._socket;
  }

  protected write(frame: OutboundFrame): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    this.corkForTick();
    if (this.format === "text") this.socket.send(frame.json);
    else this.socket.send(frame.binary);
    if (this.socket.bufferedAmount > this.limits.maxOutboundBytes) {
      this.log.warn({ sessionId: this.id, uid: this.uid, queued: this.socket.bufferedAmount }, "slow client dropped");
      this.socket.terminate();
      this.ended();
    }
  }

  /**
   * Frames written in one tick leave in one writev, as on TCP. ws has no cork of its own, and
   * corks its socket only around each frame.
   */
  private corkForTick(): void {
    const raw = this.rawSocket();
    if (this.corked || !raw) return;
    this.corked = true;
    raw.cork();
    process.nextTick(() => {
      this.corked = false;
      raw.uncork();
    });
  }

  protected shutdown(reason?: ErrorCode): void {
    // close() sends after what is queued, so the error or kick notice arrives first; the ws
    // library terminates a peer that does not answer the close handshake.
    const name = reason === undefined ? "" : errorName(reason);
    this.socket.close(reason === undefined ? 1000 : WS_CLOSE_APP, name);
    setTimeout(() => this.socket.terminate(), this.limits.closeGraceMs).unref();
  }
}

function decodeMessage(data: RawData, isBinary: boolean): Envelope {
  const bytes = Buffer.isBuffer(data)
    ? data
    : Array.isArray(data)
      ? Buffer.concat(data)
      : Buffer.from(data as ArrayBuffer);
  return isBinary ? decodeEnvelope(bytes) : envelopeFromJson(bytes.toString("utf8"));
}

export interface WsTransport {
  port: number;
  close(): Promise<void>;
}

/**
 * WebSocket listener. Messages over CHAT_MAX_FRAME_BYTES are refused by the ws library
 * itself before they are buffered: it closes the connection with code 1009 (Message Too Big),
 * which is the WebSocket form of FRAME_TOO_LARGE (no envelope can follow a close frame).
 */
export async function startWsTransport(
  host: string,
  port: number,
  node: ChatNode,
  limits: TransportLimits,
  log: Logger,
): Promise<WsTransport> {
  // The sockets open now, for close() to end. Tracked here rather than by ws
  // (clientTracking), which adds a close listener closure to every socket.
  const open = new Set<SessionSocket>();
  const onError = (err: Error) => log.debug({ err }, "websocket error");
  // ws calls listeners with the socket as `this`, typed as its own WebSocket class.
  function onClose(this: WebSocket): void {
    const socket = this as SessionSocket;
    open.delete(socket);
    socket.session?.socketClosed();
  }
  function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    const session = (this as SessionSocket).session;
    if (!session || session.closed) return;
    session.format = isBinary ? "binary" : "text";
    let envelope: Envelope;
    try {
      envelope = decodeMessage(data, isBinary);
    } catch (err) {
      // A value its field cannot hold is a refused request, not a broken stream.
      if (err instanceof BadFieldValueError) session.send(errorEnvelope(err.reqId, err.code, err.message));
      else node.reject(session, err instanceof AppError ? err : new AppError(ErrorCode.MALFORMED_FRAME));
      return;
    }
    node.handle(session, envelope);
  }
  const wss = new WebSocketServer({
    host,
    port,
    maxPayload: limits.maxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false,
    WebSocket: SessionSocket,
  });
  wss.on("connection", (socket: SessionSocket) => {
    open.add(socket);
    socket.on("error", onError);
    socket.on("close", onClose);
    const session = new WsSession(socket, limits, log);
    if (!node.attach(session)) return;
    socket.on("message", onMessage);
  });
  wss.on("error", (err) => log.error({ err }, "websocket listener error"));
  await new Promise<void>((resolve, reject) => {
    wss.once("error", reject);
    wss.once("listening", () => {
      wss.off("error", reject);
      resolve();
    });
  });
  const address = wss.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.terminate();
        wss.close(() => resolve());
      }),
  };
}

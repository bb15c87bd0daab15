import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { AppError, ErrorCode, errorName } from "../../errors.js";
import type { Envelope } from "../../gen/shardchat/v1/client.js";
import type { Logger } from "../../log/logger.js";
import { decodeEnvelope, envelopeFromJson } from "../../protocol/frame.js";
import type { ChatNode } from "../node.js";
import type { OutboundFrame } from "../outbound.js";
import { BaseSession } from "../session.js";
import type { TransportLimits } from "./tcp.js";

/** Close code of a session the node ends on purpose; the reason is the error name (e.g. "KICKED"). */
export const WS_CLOSE_APP = 4000;

/**
 * A session over one WebSocket: one Envelope per message, binary (protobuf) or text
 * (canonical JSON). The node answers in the format the client last used.
 */
class WsSession extends BaseSession {
  format: "binary" | "text" = "binary";
  private corked = false;

  constructor(
    private readonly socket: WebSocket,
    remote: string,
    private readonly limits: TransportLimits,
    private readonly log: Logger,
  ) {
    super("ws", remote);
    socket.once("close", () => this.ended());
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
   * corks its socket only around each frame; its `_socket` is that net.Socket.
   */
  private corkForTick(): void {
    const raw = (this.socket as unknown as { _socket?: Socket })._socket;
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
  const wss = new WebSocketServer({ host, port, maxPayload: limits.maxFrameBytes, perMessageDeflate: false });
  wss.on("connection", (socket: WebSocket, request: IncomingMessage) => {
    socket.on("error", (err) => log.debug({ err }, "websocket error"));
    const remote = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
    const session = new WsSession(socket, remote, limits, log);
    if (!node.attach(session)) return;
    socket.on("message", (data, isBinary) => {
      if (session.closed) return;
      session.format = isBinary ? "binary" : "text";
      let envelope: Envelope;
      try {
        envelope = decodeMessage(data, isBinary);
      } catch (err) {
        node.reject(session, err instanceof AppError ? err : new AppError(ErrorCode.MALFORMED_FRAME));
        return;
      }
      node.handle(session, envelope);
    });
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
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

import { createServer, type Server, type Socket } from "node:net";
import { decodeEnvelope, FrameDecoder } from "../../../packages/protocol/src/frame.js";
import { type ErrorCode, errorName } from "../../errors.js";
import type { Logger } from "../../log/logger.js";
import type { ChatNode } from "../node.js";
import type { OutboundFrame } from "../outbound.js";
import { BaseSession } from "../session.js";

export interface TransportLimits {
  maxFrameBytes: number;
  maxOutboundBytes: number;
  closeGraceMs: number;
}

/** A session over one TCP socket: [u32 length][Envelope] frames both ways. */
class TcpSession extends BaseSession {
  private corked = false;

  constructor(
    private readonly socket: Socket,
    private readonly limits: TransportLimits,
    private readonly log: Logger,
  ) {
    super("tcp");
    // net.Socket emits close once: `once` would add a wrapper object per socket.
    socket.on("close", () => this.ended());
  }

  /**
   * Asked only while the connection is up (a log line about a frame or an admission), when
   * the socket still knows its peer.
   */
  protected override peerAddress(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  protected write(frame: OutboundFrame): void {
    // Frames written in one tick (acks, pushes, replies) leave in one writev: a syscall per
    // frame was a tenth of a busy node's CPU.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(frame.tcp);
    if (this.socket.writableLength > this.limits.maxOutboundBytes) {
      // A client that does not read would make the node buffer without bound.
      this.log.warn({ sessionId: this.id, uid: this.uid, queued: this.socket.writableLength }, "slow client dropped");
      this.socket.destroy();
      this.ended();
    }
  }

  protected shutdown(reason?: ErrorCode): void {
    if (reason !== undefined) this.log.debug({ sessionId: this.id, reason: errorName(reason) }, "closing tcp session");
    // end() lets the last frames (the error or kick notice) reach the client; a peer that
    // never finishes the close is cut off after the grace period.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), this.limits.closeGraceMs).unref();
  }
}

export interface TcpTransport {
  port: number;
  close(): Promise<void>;
}

/** Raw TCP: reassembles frames from the stream and hands each envelope to the node. */
export async function startTcpTransport(
  host: string,
  port: number,
  node: ChatNode,
  limits: TransportLimits,
  log: Logger,
): Promise<TcpTransport> {
  const onError = (err: Error) => log.debug({ err }, "tcp socket error");
  const server: Server = createServer({ noDelay: true }, (socket) => {
    socket.on("error", onError);
    const session = new TcpSession(socket, limits, log);
    if (!node.attach(session)) return;
    const decoder = new FrameDecoder(limits.maxFrameBytes);
    socket.on("data", (chunk: Buffer) => {
      if (session.closed) return;
      // After a bad frame the stream cannot be resynchronized (where would the next frame
      // start?), so the session ends there; the frames before it are still handled.
      try {
        for (const body of decoder.push(chunk)) node.handle(session, decodeEnvelope(body));
      } catch (err) {
        node.reject(session, err);
      }
    });
  });
  server.on("error", (err) => log.error({ err }, "tcp listener error"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import type { Envelope } from "../gen/shardchat/v1/client.js";
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  envelopeFromJson,
  envelopeToJson,
  FrameDecoder,
} from "../protocol/frame.js";

/** Where and how to reach a chat node. */
export type Endpoint = (
  | { transport: "tcp"; host: string; port: number }
  | { transport: "ws"; url: string; format?: "binary" | "json" }
) & {
  /** Local address to connect from (e.g. 127.0.0.x: each source address has its own ephemeral ports). */
  localAddress?: string;
};

/** One connection to a chat node that moves whole envelopes, whatever the transport. */
export interface Wire {
  send(envelope: Envelope): void;
  /** Raw bytes or text as they are, for tests that send what a broken client would. */
  sendRaw(data: Buffer | string): void;
  close(): void;
  onEnvelope(handler: (envelope: Envelope) => void): void;
  onClose(handler: (reason: string) => void): void;
}

/** Largest frame the SDK accepts from a node (pushes of sync pages can be large). */
export const SDK_MAX_FRAME_BYTES = 16 * 1024 * 1024;

export function openWire(endpoint: Endpoint): Promise<Wire> {
  return endpoint.transport === "tcp"
    ? openTcp(endpoint.host, endpoint.port, endpoint.localAddress)
    : openWs(endpoint.url, endpoint.format, endpoint.localAddress);
}

function openTcp(host: string, port: number, localAddress?: string): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    const decoder = new FrameDecoder(SDK_MAX_FRAME_BYTES);
    let envelopeHandler: (e: Envelope) => void = () => {};
    let closeHandler: (reason: string) => void = () => {};
    let closeReason = "closed";
    socket.setNoDelay(true);
    socket.on("data", (chunk) => {
      try {
        for (const body of decoder.push(chunk)) envelopeHandler(decodeEnvelope(body));
      } catch (err) {
        closeReason = (err as Error).message;
        socket.destroy();
      }
    });
    socket.on("error", (err) => {
      closeReason = err.message;
      reject(err);
    });
    socket.on("close", () => closeHandler(closeReason));
    socket.once("connect", () =>
      resolve({
        send: (e) => socket.write(encodeFrame(e)),
        sendRaw: (data) => socket.write(data),
        close: () => socket.end(),
        onEnvelope: (h) => {
          envelopeHandler = h;
        },
        onClose: (h) => {
          closeHandler = h;
        },
      }),
    );
  });
}

function openWs(url: string, format: "binary" | "json" = "binary", localAddress?: string): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: SDK_MAX_FRAME_BYTES, ...(localAddress ? { localAddress } : {}) });
    let envelopeHandler: (e: Envelope) => void = () => {};
    let closeHandler: (reason: string) => void = () => {};
    ws.on("message", (data, isBinary) => {
      try {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        envelopeHandler(isBinary ? decodeEnvelope(buf) : envelopeFromJson(buf.toString("utf8")));
      } catch {
        ws.terminate();
      }
    });
    ws.on("error", reject);
    ws.on("close", (code, reason) => closeHandler(`ws close ${code} ${reason.toString()}`));
    ws.once("open", () =>
      resolve({
        send: (e) => ws.send(format === "json" ? envelopeToJson(e) : encodeEnvelope(e)),
        sendRaw: (data) => ws.send(data),
        close: () => ws.close(),
        onEnvelope: (h) => {
          envelopeHandler = h;
        },
        onClose: (h) => {
          closeHandler = h;
        },
      }),
    );
  });
}

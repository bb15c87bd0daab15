import { connect, type Socket } from "node:net";
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeFrame,
  envelopeFromJson,
  envelopeToJson,
  FrameDecoder,
} from "@shardchat/protocol";
import type { Envelope } from "@shardchat/protocol/wire";
import WebSocket from "ws";
import { type Endpoint, SDK_MAX_FRAME_BYTES, type Wire } from "./endpoint.js";

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

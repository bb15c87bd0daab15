import { decodeEnvelope, encodeEnvelope, envelopeFromJson, envelopeToJson } from "@shardchat/protocol";
import type { Envelope } from "@shardchat/protocol/wire";
import type { Endpoint, Wire } from "./endpoint.js";

/**
 * The SDK's wire in a browser: the browser's own WebSocket, binary envelopes. A bundler building
 * for the browser resolves `#wire` here (the `browser` condition of package.json's "imports"), so
 * neither node:net nor the `ws` package reaches the browser; raw TCP has no browser equivalent
 * and is refused.
 */
export function openWire(endpoint: Endpoint): Promise<Wire> {
  if (endpoint.transport !== "ws")
    return Promise.reject(new Error("a browser can only reach a chat node over WebSocket"));
  const format = endpoint.format ?? "binary";
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(endpoint.url);
    ws.binaryType = "arraybuffer";
    let envelopeHandler: (e: Envelope) => void = () => {};
    let closeHandler: (reason: string) => void = () => {};
    let opened = false;
    ws.onmessage = (event) => {
      try {
        const data = event.data as ArrayBuffer | string;
        envelopeHandler(typeof data === "string" ? envelopeFromJson(data) : decodeEnvelope(new Uint8Array(data)));
      } catch {
        ws.close(1002, "undecodable frame");
      }
    };
    ws.onerror = () => {
      if (!opened) reject(new Error(`cannot reach ${endpoint.url}`));
    };
    ws.onclose = (event) => {
      if (!opened) reject(new Error(`cannot reach ${endpoint.url}`));
      closeHandler(`ws close ${event.code} ${event.reason}`);
    };
    ws.onopen = () => {
      opened = true;
      resolve({
        send: (e) => ws.send(format === "json" ? envelopeToJson(e) : (encodeEnvelope(e) as Uint8Array<ArrayBuffer>)),
        sendRaw: (data) => ws.send(typeof data === "string" ? data : Uint8Array.from(data)),
        close: () => ws.close(),
        onEnvelope: (h) => {
          envelopeHandler = h;
        },
        onClose: (h) => {
          closeHandler = h;
        },
      });
    };
  });
}

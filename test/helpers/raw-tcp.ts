import { connect, type Socket } from "node:net";
import { decodeEnvelope, FrameDecoder } from "../../packages/protocol/src/frame.js";
import type { Envelope } from "../../packages/protocol/src/wire.js";

/** Polls `done` every 2 ms until it holds or `timeoutMs` passes; never throws (the caller asserts). */
export async function pollUntil(done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
}

/**
 * A bare TCP connection to a chat node, for tests that write frames by hand: what it received
 * (decoded envelopes, in order) and whether the node closed it.
 */
export async function openRawTcp(port: number): Promise<{
  socket: Socket;
  received: Envelope[];
  isClosed(): boolean;
}> {
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  const received: Envelope[] = [];
  let closed = false;
  const decoder = new FrameDecoder(16 * 1024 * 1024);
  socket.on("data", (chunk: Buffer) => {
    for (const body of decoder.push(chunk)) received.push(decodeEnvelope(body));
  });
  socket.on("error", () => undefined);
  socket.on("close", () => {
    closed = true;
  });
  return { socket, received, isClosed: () => closed };
}

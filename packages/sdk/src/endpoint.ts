import type { Envelope } from "@shardchat/protocol/wire";

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
  sendRaw(data: Uint8Array | string): void;
  close(): void;
  onEnvelope(handler: (envelope: Envelope) => void): void;
  onClose(handler: (reason: string) => void): void;
}

/** Largest frame the SDK accepts from a node (pushes of sync pages can be large). */
export const SDK_MAX_FRAME_BYTES = 16 * 1024 * 1024;

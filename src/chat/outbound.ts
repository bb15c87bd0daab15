import { decodeEnvelope, encodeEnvelope, envelopeToJson, LENGTH_BYTES } from "../../packages/protocol/src/frame.js";
import type { Envelope } from "../../packages/protocol/src/wire.js";

/**
 * A frame on its way to sessions, encoded at most once per wire format whatever the number of
 * sessions it reaches: protobuf for binary WebSocket and (length-prefixed) TCP, canonical JSON
 * for text WebSocket. A frame that came from a peer node as bytes is decoded only if a text
 * session or the re-push bookkeeping needs the object.
 */
export class OutboundFrame {
  #envelope: Envelope | undefined;
  #binary: Uint8Array | undefined;
  #tcp: Buffer | undefined;
  #json: string | undefined;

  private constructor(envelope: Envelope | undefined, binary: Uint8Array | undefined) {
    this.#envelope = envelope;
    this.#binary = binary;
  }

  static of(envelope: Envelope): OutboundFrame {
    return new OutboundFrame(envelope, undefined);
  }

  /** Bytes another node encoded (a PushItem's envelope). */
  static fromBinary(bytes: Uint8Array): OutboundFrame {
    return new OutboundFrame(undefined, bytes);
  }

  get envelope(): Envelope {
    this.#envelope ??= decodeEnvelope(this.#binary as Uint8Array);
    return this.#envelope;
  }

  get binary(): Uint8Array {
    this.#binary ??= encodeEnvelope(this.#envelope as Envelope);
    return this.#binary;
  }

  /** [u32 length][protobuf] as one buffer: one write per frame on a TCP session. */
  get tcp(): Buffer {
    if (!this.#tcp) {
      const body = this.binary;
      const frame = Buffer.allocUnsafe(LENGTH_BYTES + body.length);
      frame.writeUInt32BE(body.length, 0);
      frame.set(body, LENGTH_BYTES);
      this.#tcp = frame;
    }
    return this.#tcp;
  }

  get json(): string {
    this.#json ??= envelopeToJson(this.envelope);
    return this.#json;
  }
}

import { AppError, ErrorCode } from "../errors.js";
import { Envelope } from "../gen/shardchat/v1/client.js";

/**
 * The one frame codec of the client protocol.
 * TCP: [u32 big-endian length][protobuf Envelope]. WebSocket: one Envelope per message,
 * binary (protobuf) or text (canonical protobuf JSON).
 */
export const LENGTH_BYTES = 4;

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return Envelope.encode(envelope).finish();
}

/** Decodes one Envelope; AppError(MALFORMED_FRAME) when the bytes are not one. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  try {
    return Envelope.decode(bytes);
  } catch (err) {
    throw new AppError(ErrorCode.MALFORMED_FRAME, `undecodable envelope: ${(err as Error).message}`);
  }
}

export function envelopeToJson(envelope: Envelope): string {
  return JSON.stringify(Envelope.toJSON(envelope));
}

/** Parses a canonical-JSON Envelope; AppError(MALFORMED_FRAME) when it is not JSON or not an object. */
export function envelopeFromJson(text: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AppError(ErrorCode.MALFORMED_FRAME, "text frame is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AppError(ErrorCode.MALFORMED_FRAME, "text frame is not a JSON object");
  }
  try {
    const envelope = Envelope.fromJSON(value);
    // fromJSON lets a wrongly typed req_id through as null/NaN; the protocol says uint32.
    if (!Number.isInteger(envelope.reqId) || envelope.reqId < 0 || envelope.reqId > 0xffffffff) {
      throw new Error("reqId is not a uint32");
    }
    return envelope;
  } catch (err) {
    throw new AppError(ErrorCode.MALFORMED_FRAME, `bad envelope JSON: ${(err as Error).message}`);
  }
}

/** One TCP frame: length prefix then the encoded envelope. */
export function encodeFrame(envelope: Envelope): Buffer {
  const body = encodeEnvelope(envelope);
  const frame = Buffer.allocUnsafe(LENGTH_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, LENGTH_BYTES);
  return frame;
}

/**
 * Reassembles TCP frames from a byte stream however it was split or glued together.
 * A declared length over maxFrameBytes throws AppError(FRAME_TOO_LARGE) before any of the
 * body is buffered, so a peer cannot make the node hold a huge frame.
 */
export class FrameDecoder {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feeds bytes; answers the complete frame bodies now available, in order. */
  push(chunk: Buffer): Buffer[] {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    const bodies: Buffer[] = [];
    for (;;) {
      if (this.bufferedBytes < LENGTH_BYTES) break;
      const head = this.peek(LENGTH_BYTES);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        throw new AppError(ErrorCode.FRAME_TOO_LARGE, `frame of ${length} bytes > limit ${this.maxFrameBytes}`);
      }
      if (this.bufferedBytes < LENGTH_BYTES + length) break;
      const all = this.take(LENGTH_BYTES + length);
      bodies.push(all.subarray(LENGTH_BYTES));
    }
    return bodies;
  }

  private peek(n: number): Buffer {
    if ((this.buffered[0]?.length ?? 0) < n) this.buffered = [Buffer.concat(this.buffered)];
    return (this.buffered[0] as Buffer).subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? (this.buffered[0] as Buffer) : Buffer.concat(this.buffered);
    this.buffered = all.length > n ? [all.subarray(n)] : [];
    this.bufferedBytes -= n;
    return all.subarray(0, n);
  }
}

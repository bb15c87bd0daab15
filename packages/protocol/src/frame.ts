import { AppError, ErrorCode } from "./errors.js";
import { Envelope } from "./gen/shardchat/v1/client.js";

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

/**
 * A text frame that is a well-formed envelope with a field value its type cannot hold (a
 * fraction, NaN, Infinity or a negative number for a uint32, a uid sent as a JSON number a
 * parser cannot keep exactly). Answered INVALID_ARGUMENT with the frame's reqId; the session
 * goes on, as for any refused request.
 */
export class BadFieldValueError extends AppError {
  constructor(
    readonly reqId: number,
    message: string,
  ) {
    super(ErrorCode.INVALID_ARGUMENT, message);
  }
}

/**
 * Parses a canonical-JSON Envelope: AppError(MALFORMED_FRAME) when it is not JSON, not an
 * object or has no valid reqId; BadFieldValueError when a field's value does not fit its type.
 */
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
  let envelope: Envelope;
  try {
    envelope = Envelope.fromJSON(value);
    // fromJSON lets a wrongly typed req_id through as null/NaN; the protocol says uint32.
    if (!Number.isInteger(envelope.reqId) || envelope.reqId < 0 || envelope.reqId > 0xffffffff) {
      throw new Error("reqId is not a uint32");
    }
  } catch (err) {
    throw new AppError(ErrorCode.MALFORMED_FRAME, `bad envelope JSON: ${(err as Error).message}`);
  }
  // JSON.parse has already rounded a number past 2^53 (a 64-bit id sent unquoted): refuse it
  // rather than act on a neighbouring id.
  const inexact = firstInexactNumber(value);
  if (inexact !== undefined) {
    throw new BadFieldValueError(
      envelope.reqId,
      `${inexact} is not an integer a JSON number holds exactly; send 64-bit ids as strings`,
    );
  }
  // fromJSON turns what it is given into the field's type: {"text": {...}} would be stored as
  // the text "[object Object]", {"text": true} as "true". A JSON object, array or boolean where
  // the field holds a string or number is refused instead.
  const coerced = firstCoercedField(value, Envelope.toJSON(envelope), "");
  if (coerced !== undefined) {
    throw new BadFieldValueError(envelope.reqId, `${coerced.slice(1)} has a JSON type its field cannot hold`);
  }
  // fromJSON copies what it is given (Number("NaN"), 1e400, -1, 1.5); the binary writer checks
  // every value against its field's type, so encoding once is the type check.
  try {
    Envelope.encode(envelope);
  } catch (err) {
    throw new BadFieldValueError(envelope.reqId, `bad field value: ${(err as Error).message}`);
  }
  return envelope;
}

/**
 * The path of the first field whose given JSON value fromJSON turned into a scalar of another
 * kind (an object, array or boolean become a string or number), comparing what was sent with
 * what the envelope reads back as JSON. Fields the envelope does not know are skipped.
 */
function firstCoercedField(given: unknown, read: unknown, path: string): string | undefined {
  if (given === null || given === undefined || read === undefined) return undefined;
  const scalar = (v: unknown) => typeof v === "string" || typeof v === "number";
  if (typeof given === "object" || typeof given === "boolean") {
    if (scalar(read)) return path;
  }
  if (typeof given !== "object" || typeof read !== "object" || read === null) return undefined;
  if (Array.isArray(given) !== Array.isArray(read)) return path;
  for (const [key, item] of Object.entries(given as Record<string, unknown>)) {
    const found = firstCoercedField(item, (read as Record<string, unknown>)[key], `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The first number anywhere in a parsed JSON value that is not a safe integer. */
function firstInexactNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) ? undefined : value;
  if (typeof value !== "object" || value === null) return undefined;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    const found = firstInexactNumber(item);
    if (found !== undefined) return found;
  }
  return undefined;
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

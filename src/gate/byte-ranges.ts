import parseRange from "range-parser";
import type { ByteRange } from "../files/ports.js";

/** What a GET answers for an object of some size, given its Range headers. */
export type RangeAnswer =
  | { kind: "whole" }
  | { kind: "part"; range: ByteRange }
  /** 416, its Content-Range naming only the size. */
  | { kind: "unsatisfiable" };

/** "-n": the last n bytes. */
const SUFFIX_RANGE = /^bytes=\s*-\s*(\d+)\s*$/;

/**
 * The answer to `Range` (RFC 9110 §14) for an object of `size` bytes:
 * - none, not bytes, or malformed: the whole object (a server ignores a Range it cannot use);
 * - one range (or several that touch or overlap, merged): that part, 206;
 * - several disjoint ranges: the whole object, 200. A multipart/byteranges reply is allowed
 *   instead, but nothing we serve to needs one (resumed downloads and media players ask for
 *   one range), and the whole object is always a correct answer;
 * - none that overlaps the object: unsatisfiable, 416.
 * `If-Range` asks for the part only if the object still has a validator the client holds. We
 * send no ETag or Last-Modified, so no client holds one of ours: with If-Range, the whole object.
 */
export function answerToRange(headers: { range?: string; "if-range"?: string }, size: number): RangeAnswer {
  const header = headers.range;
  if (header === undefined || !header.startsWith("bytes=") || headers["if-range"] !== undefined) {
    return { kind: "whole" };
  }
  const parsed = parseRange(size, header, { combine: true });
  if (parsed === -2) return { kind: "whole" };
  if (parsed === -1) {
    // range-parser finds "-n" longer than the object unsatisfiable; RFC 9110 §14.1.2 serves
    // the whole object as that part (only an empty object has no last bytes to give).
    const suffix = SUFFIX_RANGE.exec(header);
    if (suffix && Number(suffix[1]) > 0 && size > 0) return { kind: "part", range: { start: 0, end: size - 1 } };
    return { kind: "unsatisfiable" };
  }
  const [only] = parsed;
  return parsed.length === 1 && only
    ? { kind: "part", range: { start: only.start, end: only.end } }
    : { kind: "whole" };
}

/** `Content-Range` of a 206. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** `Content-Range` of a 416. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}

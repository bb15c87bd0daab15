import type { Readable } from "node:stream";

/** Bytes `start` to `end` of an object, both included (as HTTP's Range counts them). */
export interface ByteRange {
  start: number;
  end: number;
}

/** What a store knows of an object without reading it. */
export interface StoredObjectInfo {
  size: number;
  /** As stored with it, when the store keeps one (S3 does; local disk does not). */
  contentType?: string;
}

/**
 * Where uploaded files' bytes live, by key (the file id, and derived keys such as a
 * thumbnail's). Gate is the only user: chat nodes never carry file bytes. Local disk is the
 * embedded default; an S3-compatible object store is the other adapter (src/files/s3.ts).
 */
export interface FileStore {
  /**
   * Stores the stream's bytes under key and answers how many there were. Nothing is visible
   * under key until the whole stream is stored; a stream that fails leaves nothing behind.
   */
  put(key: string, body: Readable, info?: { contentType?: string }): Promise<number>;
  /** The bytes under key (only `range`'s when given; it lies within the object), or null when there are none. */
  get(key: string, range?: ByteRange): Promise<Readable | null>;
  /** The object's size (and type), or null when there is none. */
  head(key: string): Promise<StoredObjectInfo | null>;
  delete(key: string): Promise<void>;
  /**
   * Present when clients can move bytes to and from the store themselves (S3): gate then
   * hands out presigned URLs and file bytes never pass through it. Absent (local disk): gate
   * serves and takes the bytes.
   */
  readonly direct?: DirectTransfers;
}

/** One HTTP request a client makes to the store itself, signed for one object and a short time. */
export interface PresignedRequest {
  url: string;
  method: "PUT";
  /** Headers the client must send as they are (they are part of the signature). */
  headers: Record<string, string>;
  expiresAtMs: number;
}

/** Presigned URLs for one object each, valid `expiresInSeconds`. */
export interface DirectTransfers {
  /** A PUT of exactly `size` bytes of `contentType` under key. */
  uploadUrl(
    key: string,
    request: { contentType: string; size: number; expiresInSeconds: number },
  ): Promise<PresignedRequest>;
  /** A GET of the object (ranges allowed), answered with this type and a download name. */
  downloadUrl(
    key: string,
    response: { contentType: string; fileName: string; inline: boolean; expiresInSeconds: number },
  ): Promise<{ url: string; expiresAtMs: number }>;
}

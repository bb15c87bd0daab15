import type { Readable } from "node:stream";

/**
 * Where uploaded files' bytes live, by key (the file id). gate is the only user: chat nodes
 * never carry file bytes. Local disk is the default adapter; an object store (S3 and the like)
 * is another implementation of this port.
 */
export interface FileStore {
  /**
   * Stores the stream's bytes under key and answers how many there were. Nothing is visible
   * under key until the whole stream is stored; a stream that fails leaves nothing behind.
   */
  put(key: string, body: Readable): Promise<number>;
  /** The bytes under key, or null when there are none. */
  get(key: string): Promise<Readable | null>;
  delete(key: string): Promise<void>;
}

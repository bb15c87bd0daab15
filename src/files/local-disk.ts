import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, ErrorCode } from "../errors.js";
import type { ByteRange, FileStore, StoredObjectInfo } from "./ports.js";

/**
 * Keys are what gate makes them (decimal ids, derived keys such as `<id>_thumb`): anything else
 * could climb out of the directory.
 */
const SAFE_KEY = /^[0-9A-Za-z_-]{1,64}$/;

/**
 * Files under one directory, fanned out by the file id's last two characters so no directory
 * grows huge. A put writes a temporary file and renames it into place: a reader sees the whole
 * file or none. No content type is kept (gate's metadata has it), and there are no direct
 * transfers: gate serves and takes the bytes.
 */
export class LocalDiskFileStore implements FileStore {
  constructor(private readonly dir: string) {}

  async put(key: string, body: Readable): Promise<number> {
    const path = this.pathOf(key);
    await mkdir(join(path, ".."), { recursive: true });
    const temp = `${path}.${randomBytes(6).toString("hex")}.part`;
    let bytes = 0;
    body.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    try {
      await pipeline(body, createWriteStream(temp, { flags: "wx" }));
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
    return bytes;
  }

  async get(key: string, range?: ByteRange): Promise<Readable | null> {
    const path = this.pathOf(key);
    // Opened before it is read, so a delete in between still reads the whole file, not an error.
    const handle = await open(path, "r").catch(missingAsNull);
    if (!handle) return null;
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async head(key: string): Promise<StoredObjectInfo | null> {
    const found = await stat(this.pathOf(key)).catch(missingAsNull);
    return found ? { size: found.size } : null;
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch(missingAsNull);
  }

  private pathOf(key: string): string {
    if (!SAFE_KEY.test(key)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "bad file key");
    // By the file id's last two digits, so a derived key (`<id>_thumb`) sits beside its file
    // instead of every derived key of one suffix filling one directory.
    const id = key.split("_")[0] || key;
    return join(this.dir, id.slice(-2), key);
  }
}

function missingAsNull(err: NodeJS.ErrnoException): null {
  if (err.code === "ENOENT") return null;
  throw new AppError(ErrorCode.UNAVAILABLE, `file store: ${err.message}`);
}

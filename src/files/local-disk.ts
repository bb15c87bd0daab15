import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AppError, ErrorCode } from "../errors.js";
import type { FileStore } from "./ports.js";

/** Keys are what gate makes them (decimal ids): anything else could climb out of the directory. */
const SAFE_KEY = /^[0-9A-Za-z_-]{1,64}$/;

/**
 * Files under one directory, fanned out by the key's last two characters so no directory
 * grows huge. A put writes a temporary file and renames it into place: a reader sees the whole
 * file or none.
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

  async get(key: string): Promise<Readable | null> {
    const path = this.pathOf(key);
    try {
      await stat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new AppError(ErrorCode.UNAVAILABLE, `file store: ${(err as Error).message}`);
    }
    return createReadStream(path);
  }

  async delete(key: string): Promise<void> {
    await unlink(this.pathOf(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }

  private pathOf(key: string): string {
    if (!SAFE_KEY.test(key)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "bad file key");
    return join(this.dir, key.slice(-2), key);
  }
}

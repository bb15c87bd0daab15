import { join, resolve } from "node:path";
import type { Config } from "../config/settings.js";
import { LocalDiskFileStore } from "./local-disk.js";
import type { FileStore } from "./ports.js";

/** The configured file store: local disk under FILE_STORE_DIR (default DATA_DIR/files). */
export function createFileStore(config: Pick<Config, "FILE_STORE_DIR" | "DATA_DIR">): FileStore {
  return new LocalDiskFileStore(resolve(config.FILE_STORE_DIR || join(config.DATA_DIR, "files")));
}

import { join, resolve } from "node:path";
import type { Locker } from "@tus/server";
import sharp from "sharp";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { ImagePreviews } from "./image-preview.js";
import type { ImageLimits } from "./images.js";
import { LocalDiskFileStore } from "./local-disk.js";
import type { FileStore } from "./ports.js";
import { LocalResumableStore, type ResumableStore, S3ResumableStore } from "./resumable-store.js";
import { connectS3FileStore, type S3Connection, type S3Placement } from "./s3.js";

export type FileStoreConfig = Pick<
  Config,
  | "FILE_STORE"
  | "FILE_STORE_DIR"
  | "DATA_DIR"
  | "S3_ENDPOINT"
  | "S3_PUBLIC_ENDPOINT"
  | "S3_REGION"
  | "S3_BUCKET"
  | "S3_ACCESS_KEY_ID"
  | "S3_SECRET_ACCESS_KEY"
  | "S3_FORCE_PATH_STYLE"
  | "S3_KEY_PREFIX"
  | "S3_PART_BYTES"
>;

/** FILE_STORE_DIR, or DATA_DIR/files: where FILE_STORE=local keeps files. */
function localFileDir(config: Pick<FileStoreConfig, "FILE_STORE_DIR" | "DATA_DIR">): string {
  return resolve(config.FILE_STORE_DIR || join(config.DATA_DIR, "files"));
}

/**
 * How to reach FILE_STORE=s3's store, from the S3_* settings: the one source of every S3
 * client gate makes (the FileStore's, tus's). No bucket, or half a key pair, throws ConfigError.
 */
export function s3Connection(config: FileStoreConfig): S3Connection {
  if (config.S3_BUCKET === "") throw new ConfigError("FILE_STORE=s3: S3_BUCKET is required");
  if ((config.S3_ACCESS_KEY_ID === "") !== (config.S3_SECRET_ACCESS_KEY === "")) {
    throw new ConfigError(
      "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together (or both empty: the SDK's credentials)",
    );
  }
  const endpoint = config.S3_ENDPOINT || undefined;
  return {
    region: config.S3_REGION,
    endpoint,
    publicEndpoint: config.S3_PUBLIC_ENDPOINT || endpoint,
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    credentials:
      config.S3_ACCESS_KEY_ID === ""
        ? undefined
        : { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY },
  };
}

function s3Placement(config: FileStoreConfig): S3Placement {
  return { bucket: config.S3_BUCKET, keyPrefix: config.S3_KEY_PREFIX, partBytes: config.S3_PART_BYTES };
}

/**
 * The configured file store: local disk under FILE_STORE_DIR (default DATA_DIR/files), or
 * S3_BUCKET of an S3-compatible store. An s3 store without a bucket, or with half a key pair,
 * throws ConfigError at start.
 */
export function createFileStore(config: FileStoreConfig): FileStore {
  if (config.FILE_STORE === "local") return new LocalDiskFileStore(localFileDir(config));
  return connectS3FileStore(s3Connection(config), s3Placement(config));
}

/**
 * Where resumable (tus) uploads wait until finished, beside `bytes`: with FILE_STORE=local the
 * directory `tus-partial` of the files' directory, with s3 multipart uploads of the same bucket
 * (./resumable-store.ts). Unfinished ones expire after GATE_RESUMABLE_EXPIRY_MS. `locker`: tus's
 * lock of an upload shared by every gate (./upload-locker.ts); absent, one process's own.
 */
export function createResumableStore(
  config: FileStoreConfig & Pick<Config, "GATE_RESUMABLE_EXPIRY_MS">,
  bytes: FileStore,
  locker?: Locker,
): ResumableStore {
  if (config.FILE_STORE === "local") {
    const dir = join(localFileDir(config), "tus-partial");
    return new LocalResumableStore(dir, bytes, config.GATE_RESUMABLE_EXPIRY_MS, locker);
  }
  return new S3ResumableStore(
    s3Connection(config),
    s3Placement(config),
    bytes,
    config.GATE_RESUMABLE_EXPIRY_MS,
    locker,
  );
}

/**
 * Gate's file services: the configured store, the image previews made on upload into it
 * (dimensions and a thumbnail, IMAGE_* bounds), and where resumable uploads wait. Only gate
 * makes them: chat nodes never load the image library. `uploadLocker`: the resumable uploads'
 * lock shared by every gate (one request at a time per upload, whichever gate it reaches).
 */
export function createFileServices(
  config: FileStoreConfig & ImageLimits & Pick<Config, "GATE_RESUMABLE_EXPIRY_MS">,
  log: Logger,
  uploadLocker?: Locker,
): { bytes: FileStore; previews: ImagePreviews; resumable: ResumableStore } {
  const bytes = createFileStore(config);
  // Every upload is a new image: libvips's operation cache would only hold memory.
  sharp.cache(false);
  return {
    bytes,
    previews: new ImagePreviews(bytes, config, log.child({ use: "images" })),
    resumable: createResumableStore(config, bytes, uploadLocker),
  };
}

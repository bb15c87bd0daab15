import { FileStore as TusFileStore } from "@tus/file-store";
import { type MetadataValue, S3Store } from "@tus/s3-store";
import type { DataStore, KvStore, Locker } from "@tus/server";
import type { FileStore } from "./ports.js";
import { type S3Connection, type S3Placement, s3ClientConfig } from "./s3.js";

/**
 * Where resumable (tus) uploads are kept until they are finished, and how a finished one
 * becomes the file: the FileStore's object under the file id, as any other upload's.
 */
export interface ResumableStore {
  /** tus's store of the uploads under way (`@tus/file-store` or `@tus/s3-store`). */
  readonly datastore: DataStore;
  /**
   * tus's lock of an upload, shared by every gate (./upload-locker.ts); absent: `@tus/server`'s
   * MemoryLocker, which only one process sees.
   */
  readonly locker?: Locker;
  /** The tus upload id of a file id: the key tus stores it under. */
  uploadIdOf(fileId: string): string;
  /** The file id of a tus upload id. */
  fileIdOf(uploadId: string): string;
  /** Makes a finished upload the FileStore's object under its file id and forgets tus's records of it. */
  settle(uploadId: string, info: { contentType: string }): Promise<void>;
  /** Removes an upload, finished or not, with whatever it stored. */
  discard(uploadId: string): Promise<void>;
}

/**
 * Unfinished uploads as files of one directory (`@tus/file-store`: the bytes and a `.json`
 * of their metadata); a finished one is streamed into the FileStore, then removed here.
 */
export class LocalResumableStore implements ResumableStore {
  readonly datastore: TusFileStore;

  constructor(
    directory: string,
    private readonly bytes: FileStore,
    expiryMs: number,
    readonly locker?: Locker,
  ) {
    this.datastore = new TusFileStore({ directory, expirationPeriodInMilliseconds: expiryMs });
  }

  uploadIdOf(fileId: string): string {
    return fileId;
  }

  fileIdOf(uploadId: string): string {
    return uploadId;
  }

  async settle(uploadId: string, info: { contentType: string }): Promise<void> {
    await this.bytes.put(this.fileIdOf(uploadId), this.datastore.read(uploadId), info);
    await this.datastore.remove(uploadId);
  }

  async discard(uploadId: string): Promise<void> {
    await this.datastore.remove(uploadId).catch(() => undefined);
    await this.bytes.delete(this.fileIdOf(uploadId));
  }
}

/**
 * `@tus/s3-store`'s cache of an upload's `.info`, kept nowhere: every gate reads the bucket,
 * which all of them share. Its MemoryKvStore would be each process's own, and a gate that did not
 * see another finish or delete an upload would go on answering for it (one small GET per request
 * is what that costs).
 */
class NoMetadataCache implements KvStore<MetadataValue> {
  async get(): Promise<undefined> {
    return undefined;
  }
  async set(): Promise<void> {}
  async delete(): Promise<void> {}
}

/** `@tus/s3-store`, which forgets a finished upload's `.info`, and removes an upload whole. */
class GateS3Store extends S3Store {
  override async remove(uploadId: string): Promise<void> {
    await super.remove(uploadId);
    // Termination (2.0.7) leaves the upload's unfinished last part, `<id>.part`, behind.
    await this.client.deleteObject({ Bucket: this.bucket, Key: this.partKey(uploadId, true) });
  }

  async forget(uploadId: string): Promise<void> {
    await this.client.deleteObject({ Bucket: this.bucket, Key: this.infoKey(uploadId) });
    await this.clearCache(uploadId);
  }
}

/**
 * Unfinished uploads as S3 multipart uploads of the FileStore's bucket. Its expiry
 * (cleanUpExpiredUploads) aborts every multipart upload of the bucket begun longer ago than
 * GATE_RESUMABLE_EXPIRY_MS, whatever its key prefix: a bucket shared by deployments expires all
 * their uploads at the shortest expiry. `@tus/s3-store` writes
 * an upload's bytes under its upload id exactly (beside `<id>.info` and `<id>.part`), and has no
 * key prefix of its own: the upload id is therefore `S3_KEY_PREFIX` + the file id, so the
 * finished object already is where S3FileStore reads the file, and finishing copies nothing;
 * it only deletes the `.info`. The upload URL names the bare file id (gate strips and adds the
 * prefix, which may hold a `/`).
 */
export class S3ResumableStore implements ResumableStore {
  readonly datastore: GateS3Store;

  constructor(
    connection: S3Connection,
    private readonly placement: S3Placement,
    private readonly bytes: FileStore,
    expiryMs: number,
    readonly locker?: Locker,
  ) {
    this.datastore = new GateS3Store({
      cache: new NoMetadataCache(),
      s3ClientConfig: { ...s3ClientConfig(connection), bucket: placement.bucket },
      partSize: placement.partBytes,
      expirationPeriodInMilliseconds: expiryMs,
      // Expired uploads are found by gate's sweep (cleanUpExpiredUploads), not by a lifecycle
      // rule on tags, and several S3-compatible stores refuse object tagging.
      useTags: false,
    });
  }

  uploadIdOf(fileId: string): string {
    return `${this.placement.keyPrefix}${fileId}`;
  }

  fileIdOf(uploadId: string): string {
    return uploadId.slice(this.placement.keyPrefix.length);
  }

  async settle(uploadId: string): Promise<void> {
    await this.datastore.forget(uploadId);
  }

  async discard(uploadId: string): Promise<void> {
    // An unfinished upload is aborted; a finished one (no multipart upload left) is its object.
    await this.datastore.remove(uploadId).catch(() => undefined);
    await this.bytes.delete(this.fileIdOf(uploadId));
    await this.datastore.forget(uploadId).catch(() => undefined);
  }
}

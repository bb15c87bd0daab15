import { MysqlFileMetaStore } from "../mysql/file-meta-store.js";
import type { FileMeta, FileMetaStore, Uid } from "../ports.js";
import type { Shards } from "./shards.js";

/**
 * Files' metadata over MySQL shards, placed by file id: a download knows only the id, so the
 * row is found with one read on one shard (sql/README.md).
 */
export class ShardedFileMetaStore implements FileMetaStore {
  constructor(private readonly shards: Shards) {}

  /** A fenced write is tried again on the slot's owner in the new map (Shards.retryingFences). */
  create(meta: FileMeta): Promise<void> {
    return this.shards.retryingFences(() => this.storeOf(meta.id).create(meta));
  }

  byId(id: string): Promise<FileMeta | null> {
    return this.storeOf(id).byId(id);
  }

  markSent(id: string, atMs: number): Promise<boolean> {
    return this.shards.retryingFences(() => this.storeOf(id).markSent(id, atMs));
  }

  /** On the file's shard: its shares are placed by the file id too ("file:" + id). */
  share(id: string, convId: string): Promise<boolean> {
    return this.shards.retryingFences(() => this.storeOf(id).share(id, convId));
  }

  /** Every instance in turn (files are placed by id), up to limit in all. */
  async sweepUnsent(beforeMs: number, limit: number): Promise<string[]> {
    const swept: string[] = [];
    for (const instance of this.shards.map.instances) {
      if (swept.length >= limit) break;
      const store = new MysqlFileMetaStore(this.shards.pool(instance.id), this.shards.guard);
      swept.push(...(await store.sweepUnsent(beforeMs, limit - swept.length)));
    }
    return swept;
  }

  /**
   * Files are placed by id, so a user's are on every instance: one query per instance (each by
   * idx_files_owner), summed. A scatter on each upload is acceptable: uploads are rare next to
   * messages, and a message never asks.
   */
  async usageOf(owner: Uid): Promise<number> {
    const each = await Promise.all(this.shards.map.instances.map((i) => this.storeOn(i.id).usageOf(owner)));
    return each.reduce((sum, bytes) => sum + bytes, 0);
  }

  startPending(id: string, owner: Uid, size: number, atMs: number): Promise<void> {
    return this.shards.retryingFences(() => this.storeOf(id).startPending(id, owner, size, atMs));
  }

  completePending(id: string): Promise<void> {
    return this.shards.retryingFences(() => this.storeOf(id).completePending(id));
  }

  /** On the file's shard: its shares, which keep it, are placed by the file id too. */
  release(id: string, atMs: number): Promise<boolean> {
    return this.shards.retryingFences(() => this.storeOf(id).release(id, atMs));
  }

  /** Every instance in turn, up to limit in all (as sweepUnsent). */
  sweepPending(beforeMs: number, limit: number): Promise<string[]> {
    return this.eachInstance(limit, (store, left) => store.sweepPending(beforeMs, left));
  }

  sweepReleased(limit: number): Promise<string[]> {
    return this.eachInstance(limit, (store, left) => store.sweepReleased(left));
  }

  private async eachInstance(
    limit: number,
    sweep: (store: MysqlFileMetaStore, left: number) => Promise<string[]>,
  ): Promise<string[]> {
    const swept: string[] = [];
    for (const instance of this.shards.map.instances) {
      if (swept.length >= limit) break;
      swept.push(...(await sweep(this.storeOn(instance.id), limit - swept.length)));
    }
    return swept;
  }

  private storeOn(instanceId: string): MysqlFileMetaStore {
    return new MysqlFileMetaStore(this.shards.pool(instanceId), this.shards.guard);
  }

  private storeOf(fileId: string): MysqlFileMetaStore {
    return new MysqlFileMetaStore(this.shards.pool(this.shards.instanceFor(`file:${fileId}`).id), this.shards.guard);
  }
}

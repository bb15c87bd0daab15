import { AppError, ErrorCode } from "../errors.js";
import type { FileMetaStore, Uid } from "../storage/ports.js";
import type { GateConfig } from "./deps.js";

/**
 * What one user may keep stored (GATE_USER_STORAGE_MAX_BYTES): the bytes of its files not yet
 * deleted, as storage sums them. Unlike the daily budgets (UploadQuota) it is read from the
 * files themselves, so deleting files frees it; every upload path asks before storing a byte.
 */
export class StorageQuota {
  constructor(
    private readonly meta: Pick<FileMetaStore, "usageOf">,
    private readonly config: Pick<GateConfig, "GATE_USER_STORAGE_MAX_BYTES">,
  ) {}

  /** Throws STORAGE_QUOTA_EXCEEDED unless `size` more bytes of uid's fit beside what it stores now. */
  async ensureRoom(uid: Uid, size: number): Promise<void> {
    const max = this.config.GATE_USER_STORAGE_MAX_BYTES;
    if (max === 0) return;
    const used = await this.meta.usageOf(uid);
    if (used + size > max) {
      throw new AppError(
        ErrorCode.STORAGE_QUOTA_EXCEEDED,
        `your stored files take ${used} of ${max} bytes: ${size} more do not fit`,
      );
    }
  }
}

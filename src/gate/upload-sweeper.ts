import { thumbnailKey } from "../files/image-preview.js";
import type { FileStore } from "../files/ports.js";
import type { Logger } from "../log/logger.js";
import type { FileMetaStore } from "../storage/ports.js";

/** How many unsent uploads one round of the sweep removes at most (it goes on next time). */
const SWEEP_BATCH = 200;

/**
 * Deletes uploads that no message named within `ttlMs` of their upload: their metadata first
 * (only while still unsent, so a file a message names meanwhile stays), then their bytes.
 * Several gates may sweep at once: each file's row is deleted by one of them.
 */
export class UploadSweeper {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(
    private readonly meta: Pick<FileMetaStore, "sweepUnsent">,
    private readonly bytes: Pick<FileStore, "delete">,
    private readonly ttlMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sweeps every intervalMs (0: never). */
  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.#timer = setInterval(() => void this.sweep().catch(() => undefined), intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  /** One round; answers how many uploads it removed. A round under way is shared. */
  sweep(): Promise<number> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<number> {
    const ids = await this.meta.sweepUnsent(this.now() - this.ttlMs, SWEEP_BATCH).catch((err: unknown) => {
      this.log.warn({ err }, "upload sweep: cannot list unsent uploads");
      throw err;
    });
    for (const id of ids) {
      // The thumbnail gate made of an image goes with it (deleting one that was never made is fine).
      await Promise.all([this.bytes.delete(id), this.bytes.delete(thumbnailKey(id))]).catch((err: unknown) =>
        this.log.warn({ err, id }, "upload sweep: bytes not deleted"),
      );
    }
    if (ids.length > 0) this.log.info({ removed: ids.length }, "swept uploads no message named");
    return ids.length;
  }
}

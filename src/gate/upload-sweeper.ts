import { thumbnailKey } from "../files/image-preview.js";
import type { FileStore } from "../files/ports.js";
import type { Logger } from "../log/logger.js";
import type { FileMetaStore } from "../storage/ports.js";

/** How many unsent uploads one round of the sweep removes at most (it goes on next time). */
const SWEEP_BATCH = 200;

/**
 * Deletes uploads that no message named within `ttlMs` of their upload: their metadata first
 * (only while still unsent, so a file a message names meanwhile stays), then their bytes. Each
 * round also deletes the objects of direct uploads started more than `ttlMs` ago (an upload
 * ticket's lifetime) and never completed, and the files the chat nodes released (no message
 * names them any more: recalled or expired), which have no FileStore to do it themselves.
 * Several gates may sweep at once: each file's row is deleted by one of them.
 */
export class UploadSweeper {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;
  /** More work of each round (tus's expired uploads: `also`). */
  readonly #also: Array<() => Promise<unknown>> = [];

  constructor(
    private readonly meta: Pick<FileMetaStore, "sweepUnsent" | "sweepPending" | "sweepReleased">,
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

  /** Runs task at the start of every round too; its failure is logged and the round goes on. */
  also(task: () => Promise<unknown>): void {
    this.#also.push(task);
  }

  /** One round; answers how many uploads it removed. A round under way is shared. */
  sweep(): Promise<number> {
    this.#running ??= this.#runAlso()
      .then(() => this.#sweep())
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  async #runAlso(): Promise<void> {
    for (const task of this.#also) {
      await task().catch((err: unknown) => this.log.warn({ err }, "upload sweep: a task failed"));
    }
  }

  async #sweep(): Promise<number> {
    const before = this.now() - this.ttlMs;
    const unsent = await this.#removeEach("uploads no message named", () => this.meta.sweepUnsent(before, SWEEP_BATCH));
    const pending = await this.#removeEach("direct uploads never completed", () =>
      this.meta.sweepPending(before, SWEEP_BATCH),
    );
    const released = await this.#removeEach("files no message names any more", () =>
      this.meta.sweepReleased(SWEEP_BATCH),
    );
    return unsent + pending + released;
  }

  /** Deletes the bytes of the files `listed` removed; answers how many. */
  async #removeEach(what: string, listed: () => Promise<string[]>): Promise<number> {
    const ids = await listed().catch((err: unknown) => {
      this.log.warn({ err }, `upload sweep: cannot list ${what}`);
      throw err;
    });
    for (const id of ids) {
      // The thumbnail gate made of an image goes with it (deleting one that was never made is fine).
      await Promise.all([this.bytes.delete(id), this.bytes.delete(thumbnailKey(id))]).catch((err: unknown) =>
        this.log.warn({ err, id }, "upload sweep: bytes not deleted"),
      );
    }
    if (ids.length > 0) this.log.info({ removed: ids.length }, `swept ${what}`);
    return ids.length;
  }
}

import { Readable } from "node:stream";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import { type ImageLimits, inspectImage } from "./images.js";
import type { FileStore } from "./ports.js";

/** The key an upload's thumbnail is stored under, beside the original (deleting one must delete both). */
export function thumbnailKey(fileId: string): string {
  return `${fileId}_thumb`;
}

/** What a message can carry about an image: its upright size and, when made, its stored thumbnail. */
export interface ImagePreview {
  width: number;
  height: number;
  thumbnail?: { key: string; width: number; height: number; size: number; contentType: string };
}

/**
 * Describes uploaded images and stores their thumbnails in the same FileStore as the originals.
 * A bad or oversized image is no error of the upload: it just has no preview (logged with why).
 */
export class ImagePreviews {
  constructor(
    private readonly store: Pick<FileStore, "head" | "get" | "put">,
    private readonly limits: ImageLimits,
    private readonly log: Pick<Logger, "warn" | "info">,
  ) {}

  /**
   * The preview of stored file `id` (uploaded as `contentType`), its thumbnail stored under
   * `thumbnailKey(id)`; null when the file is not an image or cannot be described. Never throws.
   */
  async make(id: string, contentType: string): Promise<ImagePreview | null> {
    // Only images: a video's poster frame would need a video decoder (ffmpeg), which sharp is not.
    if (!contentType.toLowerCase().startsWith("image/")) return null;
    try {
      return await this.#make(id);
    } catch (err) {
      return this.#none(id, `file store: ${(err as Error).message}`);
    }
  }

  async #make(id: string): Promise<ImagePreview | null> {
    const info = await this.store.head(id);
    if (info === null) return this.#none(id, "no stored bytes");
    // The store knows the size: an oversized image is not even opened.
    if (info.size > this.limits.IMAGE_MAX_BYTES) {
      return this.#none(id, `larger than IMAGE_MAX_BYTES (${this.limits.IMAGE_MAX_BYTES})`);
    }
    const original = await this.store.get(id);
    if (original === null) return this.#none(id, "no stored bytes");
    const inspected = await inspectImage(original, this.limits);
    if (inspected.image === null) return this.#none(id, inspected.reason);
    const { width, height, thumbnail } = inspected.image;
    if (thumbnail === undefined) {
      this.log.info(
        sampled({ fileId: id, width, height, reason: inspected.reason }),
        "image preview without thumbnail",
      );
      return { width, height };
    }
    const key = thumbnailKey(id);
    const body = Readable.from(thumbnail.bytes);
    const size = await this.store.put(key, body, { contentType: thumbnail.contentType }).catch((err: unknown) => {
      this.log.warn(sampled({ err, fileId: id }), "image preview: thumbnail not stored");
      return null;
    });
    if (size === null) return { width, height };
    return {
      width,
      height,
      thumbnail: { key, width: thumbnail.width, height: thumbnail.height, size, contentType: thumbnail.contentType },
    };
  }

  #none(id: string, reason: string): null {
    this.log.warn(sampled({ fileId: id, reason }), "no image preview");
    return null;
  }
}

import { AppError, ErrorCode } from "../errors.js";
import type { ImagePreview } from "../files/image-preview.js";
import type { FileMedia, FileMeta } from "../storage/ports.js";

/** What gate learns of an upload's content (src/files/image-preview.ts ImagePreviews). */
export interface MediaProbe {
  make(id: string, contentType: string): Promise<ImagePreview | null>;
}

/**
 * A recording's length as the uploading client declared it (`durationMs`: a voice message
 * recorder knows it; gate does not decode audio or video). Absent: 0. Only audio and video
 * carry one; it must be a whole number of milliseconds up to MEDIA_MAX_DURATION_MS.
 */
export function declaredDurationMs(raw: unknown, contentType: string, maxMs: number): number {
  if (raw === undefined || raw === "") return 0;
  const value = typeof raw === "string" && /^\d{1,10}$/.test(raw) ? Number(raw) : raw;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > maxMs) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, `durationMs must be a whole number of ms from 0 to ${maxMs}`);
  }
  if (value > 0 && !/^(audio|video)\//.test(contentType)) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, "only an audio or video file has a durationMs");
  }
  return value;
}

/**
 * What the file's row and every message naming it carry: an image's dimensions and thumbnail,
 * a recording's declared length; undefined when there is neither (most files).
 */
export async function uploadMedia(
  probe: MediaProbe | undefined,
  id: string,
  contentType: string,
  durationMs: number,
): Promise<FileMedia | undefined> {
  const preview = (await probe?.make(id, contentType)) ?? null;
  if (!preview && durationMs === 0) return undefined;
  const thumbnail = preview?.thumbnail;
  return {
    width: preview?.width ?? 0,
    height: preview?.height ?? 0,
    durationMs,
    ...(thumbnail
      ? {
          thumbnail: {
            width: thumbnail.width,
            height: thumbnail.height,
            size: String(thumbnail.size),
            contentType: thumbnail.contentType,
          },
        }
      : {}),
  };
}

/**
 * A stored upload's row, however its bytes came (multipart, direct, tus): what was checked,
 * and what gate learned of its content.
 */
export async function uploadedFile(
  probe: MediaProbe | undefined,
  upload: Omit<FileMeta, "createdAt" | "media" | "sharedWith"> & { durationMs: number },
): Promise<FileMeta> {
  const { durationMs, ...file } = upload;
  const media = await uploadMedia(probe, file.id, file.contentType, durationMs);
  return { ...file, createdAt: Date.now(), ...(media ? { media } : {}) };
}

/** What every upload path (multipart, direct, tus) answers for a stored file (storedFileReplySchema). */
export function uploadAnswer(file: FileMeta) {
  const { id, name, size, contentType, media } = file;
  return { error: ErrorCode.OK, id, url: `/v1/files/${id}`, name, size, contentType, ...(media ? { media } : {}) };
}

import type { FileMedia, StoredFile } from "./ports.js";

/**
 * A message's file reference as its `file_json` column holds it: a copy of the file's
 * metadata, so history and sync never look up the files table (which lives on other shards).
 */
export function fileRefToColumn(ref: StoredFile | undefined): string | null {
  if (!ref) return null;
  return JSON.stringify({
    id: ref.id,
    name: ref.name,
    size: ref.size,
    contentType: ref.contentType,
    ...(ref.media ? { media: ref.media } : {}),
  });
}

export function fileRefFromColumn(value: unknown): StoredFile | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  const parsed = JSON.parse(value) as Partial<StoredFile> & { media?: unknown };
  const media = fileMediaFromJson(parsed.media);
  return {
    id: String(parsed.id ?? "0"),
    name: String(parsed.name ?? ""),
    size: String(parsed.size ?? "0"),
    contentType: String(parsed.contentType ?? ""),
    ...(media ? { media } : {}),
  };
}

/** The files row's `media_json` (and a file reference's `media`): null when gate learned nothing. */
export function fileMediaToColumn(media: FileMedia | undefined): string | null {
  return media ? JSON.stringify(media) : null;
}

/** A stored media object (parsed JSON, or its text), checked field by field; undefined when absent or not one. */
export function fileMediaFromJson(value: unknown): FileMedia | undefined {
  const parsed = typeof value === "string" && value !== "" ? (JSON.parse(value) as unknown) : value;
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const m = parsed as Record<string, unknown>;
  const t = m.thumbnail as Record<string, unknown> | undefined | null;
  return {
    width: Number(m.width ?? 0),
    height: Number(m.height ?? 0),
    durationMs: Number(m.durationMs ?? 0),
    ...(t && typeof t === "object"
      ? {
          thumbnail: {
            width: Number(t.width ?? 0),
            height: Number(t.height ?? 0),
            size: String(t.size ?? "0"),
            contentType: String(t.contentType ?? ""),
          },
        }
      : {}),
  };
}

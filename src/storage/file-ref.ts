import type { StoredFile } from "./ports.js";

/**
 * A message's file reference as its `file_json` column holds it: a copy of the file's
 * metadata, so history and sync never look up the files table (which lives on other shards).
 */
export function fileRefToColumn(ref: StoredFile | undefined): string | null {
  if (!ref) return null;
  return JSON.stringify({ id: ref.id, name: ref.name, size: ref.size, contentType: ref.contentType });
}

export function fileRefFromColumn(value: unknown): StoredFile | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  const parsed = JSON.parse(value) as Partial<StoredFile>;
  return {
    id: String(parsed.id ?? "0"),
    name: String(parsed.name ?? ""),
    size: String(parsed.size ?? "0"),
    contentType: String(parsed.contentType ?? ""),
  };
}

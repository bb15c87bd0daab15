import { ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, type Uid } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import { fileMediaFromJson, fileMediaToColumn } from "../file-ref.js";
import type { FileMeta, FileMetaStore } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

interface FileRow {
  file_id: string;
  owner: Uid;
  conv_id: string;
  name: string;
  size: number;
  content_type: string;
  created_at: number;
  media_json: string | null;
}

/** Files' metadata in the SQLite file (sql/sqlite/007_files.sql). */
export class SqliteFileMetaStore implements FileMetaStore {
  readonly #insert;
  readonly #byId;
  readonly #markSent;
  readonly #unsent;
  readonly #deleteUnsent;
  readonly #share;
  readonly #exists;
  readonly #sharedWith;

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, string, string, number, string, number, string | null]>(
      "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at, media_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#byId = db.prepare<[string], FileRow>("SELECT * FROM files WHERE file_id = ?");
    this.#markSent = db.prepare<[number, string]>("UPDATE files SET sent_at = COALESCE(sent_at, ?) WHERE file_id = ?");
    this.#unsent = db.prepare<[number, number], { file_id: string }>(
      "SELECT file_id FROM files WHERE sent_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
    );
    this.#deleteUnsent = db.prepare<[string]>("DELETE FROM files WHERE file_id = ? AND sent_at IS NULL");
    // Only for a file that exists: a share row never outlives (or precedes) its file.
    this.#share = db.prepare<[string, number, string]>(
      "INSERT OR IGNORE INTO file_shares (file_id, conv_id, created_at) SELECT file_id, ?, ? FROM files WHERE file_id = ?",
    );
    this.#exists = db.prepare<[string]>("SELECT 1 FROM files WHERE file_id = ?");
    this.#sharedWith = db.prepare<[string], { conv_id: string }>(
      "SELECT conv_id FROM file_shares WHERE file_id = ? ORDER BY created_at, conv_id",
    );
  }

  async share(id: string, convId: string): Promise<boolean> {
    const canonical = canonicalId(id);
    if (canonical === null || typeof convId !== "string" || !convId || !fitsChars(convId, COLUMN_CHARS.convId)) {
      return false;
    }
    return call(() => {
      if (this.#share.run(convId, Date.now(), canonical).changes > 0) return true;
      // Nothing inserted: shared before, or no such file.
      return this.#exists.get(canonical) !== undefined;
    });
  }

  async markSent(id: string, atMs: number): Promise<boolean> {
    const canonical = canonicalId(id);
    if (canonical === null) return false;
    const result = sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite file store", () =>
      this.#markSent.run(atMs, canonical),
    );
    return result.changes > 0;
  }

  async sweepUnsent(beforeMs: number, limit: number): Promise<string[]> {
    return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite file store", () =>
      this.#unsent
        .all(beforeMs, limit)
        .map((r) => String(r.file_id))
        .filter((id) => this.#deleteUnsent.run(id).changes > 0),
    );
  }

  async create(meta: FileMeta): Promise<void> {
    const id = requireCanonicalId(meta.id);
    const owner = requireCanonicalId(meta.owner);
    sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite file store", () =>
      this.#insert.run(
        id,
        owner,
        meta.convId,
        meta.name,
        meta.size,
        meta.contentType,
        meta.createdAt,
        fileMediaToColumn(meta.media),
      ),
    );
  }

  async byId(id: string): Promise<FileMeta | null> {
    const canonical = canonicalId(id);
    if (canonical === null) return null;
    const found = call(() => {
      const row = this.#byId.get(canonical);
      return row && { row, sharedWith: this.#sharedWith.all(canonical).map((r) => r.conv_id) };
    });
    if (!found) return null;
    const { row, sharedWith } = found;
    const media = fileMediaFromJson(row.media_json);
    return {
      id: row.file_id,
      owner: row.owner,
      convId: row.conv_id,
      // Absent, not empty, for a file never forwarded: the common case reads as it always did.
      ...(sharedWith.length > 0 ? { sharedWith } : {}),
      name: row.name,
      size: Number(row.size),
      contentType: row.content_type,
      createdAt: Number(row.created_at),
      ...(media ? { media } : {}),
    };
  }
}

function call<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite file store", work);
}

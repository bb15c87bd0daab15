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
  readonly #usage;
  readonly #startPending;
  readonly #completePending;
  readonly #sweepPending;
  readonly #release;
  readonly #sweepReleased;

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, string, string, number, string, number, string | null]>(
      "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at, media_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    // A released file is as good as deleted: nothing may download it or name it again.
    this.#byId = db.prepare<[string], FileRow>("SELECT * FROM files WHERE file_id = ? AND released_at IS NULL");
    this.#markSent = db.prepare<[number, string]>(
      "UPDATE files SET sent_at = COALESCE(sent_at, ?), sends = sends + 1 WHERE file_id = ? AND released_at IS NULL",
    );
    this.#unsent = db.prepare<[number, number], { file_id: string }>(
      "SELECT file_id FROM files WHERE sent_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
    );
    this.#deleteUnsent = db.prepare<[string]>("DELETE FROM files WHERE file_id = ? AND sent_at IS NULL");
    // Only for a file that exists: a share row never outlives (or precedes) its file.
    this.#share = db.prepare<[string, number, string]>(
      "INSERT OR IGNORE INTO file_shares (file_id, conv_id, created_at) SELECT file_id, ?, ? FROM files WHERE file_id = ? AND released_at IS NULL",
    );
    this.#exists = db.prepare<[string]>("SELECT 1 FROM files WHERE file_id = ? AND released_at IS NULL");
    this.#sharedWith = db.prepare<[string], { conv_id: string }>(
      "SELECT conv_id FROM file_shares WHERE file_id = ? ORDER BY created_at, conv_id",
    );
    const usage = db.prepare<[string, string], { bytes: number | bigint }>(
      `SELECT (SELECT COALESCE(SUM(size), 0) FROM files INDEXED BY idx_files_owner WHERE owner = ?)
            + (SELECT COALESCE(SUM(size), 0) FROM pending_uploads WHERE owner = ?) AS bytes`,
    );
    this.#usage = (owner: string) => Number(usage.get(owner, owner)?.bytes ?? 0);
    this.#startPending = db.prepare<[string, string, number, number]>(
      "INSERT INTO pending_uploads (file_id, owner, size, created_at) VALUES (?, ?, ?, ?)",
    );
    this.#completePending = db.prepare<[string]>("DELETE FROM pending_uploads WHERE file_id = ?");
    const oldPending = db.prepare<[number, number], { file_id: string }>(
      "SELECT file_id FROM pending_uploads WHERE created_at < ? ORDER BY created_at LIMIT ?",
    );
    const stored = db.prepare<[string]>("SELECT 1 FROM files WHERE file_id = ?");
    // Each one's row goes; its object only when no files row names it (completed meanwhile).
    this.#sweepPending = db.transaction((beforeMs: number, limit: number): string[] =>
      oldPending
        .all(beforeMs, limit)
        .map((r) => String(r.file_id))
        .filter((id) => this.#completePending.run(id).changes > 0 && stored.get(id) === undefined),
    );
    const forRelease = db.prepare<[string], { sends: number; shared: number }>(
      `SELECT sends, EXISTS (SELECT 1 FROM file_shares s WHERE s.file_id = f.file_id) AS shared
         FROM files f WHERE file_id = ? AND released_at IS NULL`,
    );
    const release = db.prepare<[number | null, number, string]>(
      "UPDATE files SET released_at = ?, sends = ? WHERE file_id = ?",
    );
    this.#release = db.transaction((id: string, atMs: number): boolean => {
      const row = forRelease.get(id);
      // Forwarded: the copies name it, and nothing counts them.
      if (!row || Number(row.shared) === 1) return false;
      const last = Number(row.sends) <= 1;
      release.run(last ? atMs : null, Math.max(0, Number(row.sends) - 1), id);
      return last;
    });
    const released = db.prepare<[number], { file_id: string }>(
      "SELECT file_id FROM files INDEXED BY idx_files_released WHERE released_at IS NOT NULL ORDER BY released_at LIMIT ?",
    );
    // Never a file shared since its release (a forward that raced the recall): it stays.
    const deleteReleased = db.prepare<[string]>(
      `DELETE FROM files WHERE file_id = ? AND released_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM file_shares s WHERE s.file_id = files.file_id)`,
    );
    this.#sweepReleased = db.transaction((limit: number): string[] =>
      released
        .all(limit)
        .map((r) => String(r.file_id))
        .filter((id) => deleteReleased.run(id).changes > 0),
    );
  }

  async usageOf(owner: Uid): Promise<number> {
    const canonical = canonicalId(owner);
    if (canonical === null) return 0;
    return call(() => this.#usage(canonical));
  }

  async startPending(id: string, owner: Uid, size: number, atMs: number): Promise<void> {
    const [file, uid] = [requireCanonicalId(id), requireCanonicalId(owner)];
    call(() => this.#startPending.run(file, uid, size, atMs));
  }

  async completePending(id: string): Promise<void> {
    const canonical = canonicalId(id);
    if (canonical !== null) call(() => this.#completePending.run(canonical));
  }

  async sweepPending(beforeMs: number, limit: number): Promise<string[]> {
    return call(() => this.#sweepPending.immediate(beforeMs, limit));
  }

  async release(id: string, atMs: number): Promise<boolean> {
    const canonical = canonicalId(id);
    if (canonical === null) return false;
    return call(() => this.#release.immediate(canonical, atMs));
  }

  async sweepReleased(limit: number): Promise<string[]> {
    return call(() => this.#sweepReleased.immediate(limit));
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

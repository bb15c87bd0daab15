import { ErrorCode } from "../../errors.js";
import type { Uid } from "../../ids/identifiers.js";
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
}

/** Files' metadata in the SQLite file (sql/sqlite/007_files.sql). */
export class SqliteFileMetaStore implements FileMetaStore {
  readonly #insert;
  readonly #byId;
  readonly #markSent;
  readonly #unsent;
  readonly #deleteUnsent;

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, string, string, number, string, number]>(
      "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#byId = db.prepare<[string], FileRow>("SELECT * FROM files WHERE file_id = ?");
    this.#markSent = db.prepare<[number, string]>("UPDATE files SET sent_at = COALESCE(sent_at, ?) WHERE file_id = ?");
    this.#unsent = db.prepare<[number, number], { file_id: string }>(
      "SELECT file_id FROM files WHERE sent_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
    );
    this.#deleteUnsent = db.prepare<[string]>("DELETE FROM files WHERE file_id = ? AND sent_at IS NULL");
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
      this.#insert.run(id, owner, meta.convId, meta.name, meta.size, meta.contentType, meta.createdAt),
    );
  }

  async byId(id: string): Promise<FileMeta | null> {
    const canonical = canonicalId(id);
    if (canonical === null) return null;
    const row = sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite file store", () => this.#byId.get(canonical));
    if (!row) return null;
    return {
      id: row.file_id,
      owner: row.owner,
      convId: row.conv_id,
      name: row.name,
      size: Number(row.size),
      contentType: row.content_type,
      createdAt: Number(row.created_at),
    };
  }
}

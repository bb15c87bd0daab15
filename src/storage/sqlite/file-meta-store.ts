import { ErrorCode } from "../../errors.js";
import type { FileMeta, FileMetaStore } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

interface FileRow {
  file_id: string;
  owner: string;
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

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, string, string, number, string, number]>(
      "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#byId = db.prepare<[string], FileRow>("SELECT * FROM files WHERE file_id = ?");
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

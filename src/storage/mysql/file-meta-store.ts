import type { RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import type { FileMeta, FileMetaStore } from "../ports.js";
import { shardCall } from "../sharded/errors.js";
import type { Pool } from "./pool.js";

const DECIMAL_ID = /^\d{1,20}$/;

/** Files' metadata in one MySQL database (the `files` table of sql/007_files.sql). */
export class MysqlFileMetaStore implements FileMetaStore {
  constructor(private readonly pool: Pool) {}

  async create(meta: FileMeta): Promise<void> {
    if (!DECIMAL_ID.test(meta.id) || !DECIMAL_ID.test(meta.owner)) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "file and owner ids must be decimal");
    }
    await shardCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.pool.query(
        "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [meta.id, meta.owner, meta.convId, meta.name, meta.size, meta.contentType, meta.createdAt],
      ),
    );
  }

  async byId(id: string): Promise<FileMeta | null> {
    if (!DECIMAL_ID.test(id)) return null;
    const [rows] = await shardCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.pool.query<RowDataPacket[]>("SELECT * FROM files WHERE file_id = ?", [id]),
    );
    const row = rows[0];
    if (!row) return null;
    return {
      id: String(row.file_id),
      owner: String(row.owner),
      convId: String(row.conv_id),
      name: String(row.name),
      size: Number(row.size),
      contentType: String(row.content_type),
      createdAt: Number(row.created_at),
    };
  }
}

import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import type { FileMeta, FileMetaStore } from "../ports.js";
import { mysqlCall } from "./errors.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";
import { inTransaction } from "./transaction.js";

/**
 * The sharded adapter's slot fence for a file's row ("file:<id>"), run first in the write's
 * transaction (see MysqlGroupStoreOptions.guard).
 */
export type FileGuard = (conn: Connection, keys: readonly string[]) => Promise<void>;

/** Files' metadata in one MySQL database (the `files` table of sql/007_files.sql). */
export class MysqlFileMetaStore implements FileMetaStore {
  constructor(
    private readonly pool: Pool,
    private readonly guard?: FileGuard,
  ) {}

  /** One statement on a file's row: on the pool, or behind the slot fence in a transaction. */
  private write(id: string, sql: string, values: unknown[]): Promise<[ResultSetHeader, unknown]> {
    const guard = this.guard;
    if (!guard) return this.pool.query<ResultSetHeader>(sql, values);
    return inTransaction(this.pool, async (conn) => {
      await guard(conn, [`file:${id}`]);
      return conn.query<ResultSetHeader>(sql, values);
    });
  }

  async create(meta: FileMeta): Promise<void> {
    if (!isDecimalId(meta.id) || !isDecimalId(meta.owner)) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "file and owner ids must be decimal");
    }
    await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.write(
        meta.id,
        "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [meta.id, meta.owner, meta.convId, meta.name, meta.size, meta.contentType, meta.createdAt],
      ),
    );
  }

  async markSent(id: string, atMs: number): Promise<boolean> {
    if (!isDecimalId(id)) return false;
    // affectedRows counts the rows matched, changed or not: mysql2 connects with FOUND_ROWS.
    const [result] = await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.write(id, "UPDATE files SET sent_at = COALESCE(sent_at, ?) WHERE file_id = ?", [atMs, id]),
    );
    return result.affectedRows > 0;
  }

  async sweepUnsent(beforeMs: number, limit: number): Promise<string[]> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT file_id FROM files WHERE sent_at IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
        [beforeMs, limit],
      );
      const swept: string[] = [];
      for (const row of rows) {
        // Only if still unsent: a message that named it meanwhile keeps it. A row whose slot a
        // rebalance is moving is left for a later sweep, on its new owner.
        const id = String(row.file_id);
        const [done] = await this.write(id, "DELETE FROM files WHERE file_id = ? AND sent_at IS NULL", [id]).catch(
          (err: unknown) => {
            if (err instanceof AppError && err.code === ErrorCode.SLOT_MOVING) return [{ affectedRows: 0 }] as const;
            throw err;
          },
        );
        if (done.affectedRows > 0) swept.push(id);
      }
      return swept;
    });
  }

  async byId(id: string): Promise<FileMeta | null> {
    if (!isDecimalId(id)) return null;
    const [rows] = await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.pool.query<RowDataPacket[]>("SELECT * FROM files WHERE file_id = ?", [id]),
    );
    const row = rows[0];
    if (!row) return null;
    return {
      id: String(row.file_id),
      owner: storedId(row.owner),
      convId: String(row.conv_id),
      name: String(row.name),
      size: Number(row.size),
      contentType: String(row.content_type),
      createdAt: Number(row.created_at),
    };
  }
}

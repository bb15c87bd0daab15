import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, isDecimalId, requireChars, storedId } from "../../ids/identifiers.js";
import { fileMediaFromJson, fileMediaToColumn } from "../file-ref.js";
import type { FileMeta, FileMetaStore, Uid } from "../ports.js";
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

  /** A write of several statements on a file's rows, in one transaction behind the slot fence (if any). */
  private transaction<T>(id: string, work: (conn: Connection) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, async (conn) => {
      await this.guard?.(conn, [`file:${id}`]);
      return work(conn);
    });
  }

  /** A sweep's delete of one row; one whose slot a rebalance is moving is left for a later sweep, on its new owner. */
  private sweepDelete(id: string, sql: string, values: unknown[]): Promise<number> {
    return this.write(id, sql, values).then(
      ([done]) => done.affectedRows,
      (err: unknown) => {
        if (err instanceof AppError && err.code === ErrorCode.SLOT_MOVING) return 0;
        throw err;
      },
    );
  }

  async create(meta: FileMeta): Promise<void> {
    if (!isDecimalId(meta.id) || !isDecimalId(meta.owner)) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "file and owner ids must be decimal");
    }
    await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.write(
        meta.id,
        "INSERT INTO files (file_id, owner, conv_id, name, size, content_type, created_at, media_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
          meta.id,
          meta.owner,
          meta.convId,
          meta.name,
          meta.size,
          meta.contentType,
          meta.createdAt,
          fileMediaToColumn(meta.media),
        ],
      ),
    );
  }

  async markSent(id: string, atMs: number): Promise<boolean> {
    if (!isDecimalId(id)) return false;
    // affectedRows counts the rows matched, changed or not: mysql2 connects with FOUND_ROWS.
    const [result] = await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.write(
        id,
        "UPDATE files SET sent_at = COALESCE(sent_at, ?), sends = sends + 1 WHERE file_id = ? AND released_at IS NULL",
        [atMs, id],
      ),
    );
    return result.affectedRows > 0;
  }

  async share(id: string, convId: string): Promise<boolean> {
    if (!isDecimalId(id)) return false;
    // INSERT IGNORE would cut a long id short instead of refusing it.
    requireChars(convId, COLUMN_CHARS.convId, "conversation id");
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", async () => {
      // One statement in the common case (a first share): the row, only if the file exists.
      const [added] = await this.write(
        id,
        `INSERT IGNORE INTO file_shares (file_id, conv_id, created_at)
         SELECT file_id, ?, ? FROM files WHERE file_id = ? AND released_at IS NULL`,
        [convId, Date.now(), id],
      );
      if (added.affectedRows > 0) return true;
      // Nothing added: shared before, or no such file.
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT 1 FROM files WHERE file_id = ? AND released_at IS NULL",
        [id],
      );
      return rows.length > 0;
    });
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

  /** By idx_files_owner: the rows of this one database (sharded: one instance's share, summed by the caller). */
  async usageOf(owner: Uid): Promise<number> {
    if (!isDecimalId(owner)) return 0;
    const [rows] = await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.pool.query<RowDataPacket[]>(
        `SELECT (SELECT COALESCE(SUM(size), 0) FROM files WHERE owner = ?)
              + (SELECT COALESCE(SUM(size), 0) FROM pending_uploads WHERE owner = ?) AS bytes`,
        [owner, owner],
      ),
    );
    return Number(rows[0]?.bytes ?? 0);
  }

  async startPending(id: string, owner: Uid, size: number, atMs: number): Promise<void> {
    if (!isDecimalId(id) || !isDecimalId(owner)) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "file and owner ids must be decimal");
    }
    await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.write(id, "INSERT INTO pending_uploads (file_id, owner, size, created_at) VALUES (?, ?, ?, ?)", [
        id,
        owner,
        size,
        atMs,
      ]),
    );
  }

  async completePending(id: string): Promise<void> {
    if (!isDecimalId(id)) return;
    await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.write(id, "DELETE FROM pending_uploads WHERE file_id = ?", [id]),
    );
  }

  async sweepPending(beforeMs: number, limit: number): Promise<string[]> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", async () => {
      // The files row (if any) is placed by the same key: one read answers whether it completed.
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT p.file_id, f.file_id IS NOT NULL AS stored FROM pending_uploads p
           LEFT JOIN files f ON f.file_id = p.file_id
          WHERE p.created_at < ? ORDER BY p.created_at LIMIT ?`,
        [beforeMs, limit],
      );
      const swept: string[] = [];
      for (const row of rows) {
        const id = String(row.file_id);
        const removed = await this.sweepDelete(id, "DELETE FROM pending_uploads WHERE file_id = ?", [id]);
        if (removed > 0 && Number(row.stored) === 0) swept.push(id);
      }
      return swept;
    });
  }

  async release(id: string, atMs: number): Promise<boolean> {
    if (!isDecimalId(id)) return false;
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      this.transaction(id, async (conn) => {
        // Locked: a forward's share (INSERT … SELECT reads the row with a shared lock) waits, or is seen.
        const [rows] = await conn.query<RowDataPacket[]>(
          `SELECT sends, EXISTS (SELECT 1 FROM file_shares s WHERE s.file_id = f.file_id) AS shared
             FROM files f WHERE f.file_id = ? AND f.released_at IS NULL FOR UPDATE`,
          [id],
        );
        const row = rows[0];
        // Forwarded: the copies name it, and nothing counts them.
        if (!row || Number(row.shared) === 1) return false;
        const sends = Number(row.sends);
        const last = sends <= 1;
        await conn.query("UPDATE files SET released_at = ?, sends = ? WHERE file_id = ?", [
          last ? atMs : null,
          Math.max(0, sends - 1),
          id,
        ]);
        return last;
      }),
    );
  }

  async sweepReleased(limit: number): Promise<string[]> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT file_id FROM files WHERE released_at IS NOT NULL ORDER BY released_at LIMIT ?",
        [limit],
      );
      const swept: string[] = [];
      for (const row of rows) {
        const id = String(row.file_id);
        // Never a file shared since its release (a forward that raced the recall): it stays.
        const removed = await this.sweepDelete(
          id,
          `DELETE FROM files WHERE file_id = ? AND released_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM file_shares s WHERE s.file_id = ?)`,
          [id, id],
        );
        if (removed > 0) swept.push(id);
      }
      return swept;
    });
  }

  async byId(id: string): Promise<FileMeta | null> {
    if (!isDecimalId(id)) return null;
    const [rows] = await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "file store", () =>
      // The conversations it was shared into in the same round trip (NULL: none).
      this.pool.query<RowDataPacket[]>(
        `SELECT f.*, (SELECT JSON_ARRAYAGG(s.conv_id ORDER BY s.created_at, s.conv_id) FROM file_shares s
                       WHERE s.file_id = f.file_id) AS shared_with
           FROM files f WHERE f.file_id = ? AND f.released_at IS NULL`,
        [id],
      ),
    );
    const row = rows[0];
    if (!row) return null;
    // The driver parses a JSON value (older servers answer its text).
    const shared: unknown = typeof row.shared_with === "string" ? JSON.parse(row.shared_with) : row.shared_with;
    const sharedWith = Array.isArray(shared) ? shared.map(String) : [];
    const media = fileMediaFromJson(row.media_json);
    return {
      id: String(row.file_id),
      owner: storedId(row.owner),
      convId: String(row.conv_id),
      name: String(row.name),
      size: Number(row.size),
      contentType: String(row.content_type),
      createdAt: Number(row.created_at),
      ...(media ? { media } : {}),
      // Only when shared: a file of its own conversation alone reads as before.
      ...(sharedWith.length > 0 ? { sharedWith } : {}),
    };
  }
}

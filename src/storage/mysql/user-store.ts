import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import type { Uid, UserRecord, UserStore } from "../ports.js";
import { USER_COLUMNS, type UserRow as UserRowColumns, userRecordOf } from "../user-row.js";
import { isDuplicateKey, mysqlError } from "./errors.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";
import { inTransaction } from "./transaction.js";

/** A duplicate name or email is the caller's error; other failures as mysql/errors.ts reads them. */
function translate(err: unknown): unknown {
  if (isDuplicateKey(err)) {
    const message = (err as Error).message ?? "";
    if (message.includes("uk_users_name")) return new AppError(ErrorCode.USER_EXISTS);
    if (message.includes("uk_users_email")) return new AppError(ErrorCode.EMAIL_EXISTS);
  }
  return mysqlError(ErrorCode.UNAVAILABLE, "user store", err);
}

interface UserRow extends RowDataPacket, UserRowColumns {}

/** Accounts in the users table (names and emails unique case-insensitively by the schema's collation). */
export class MysqlUserStore implements UserStore {
  /**
   * `guard`, when given, runs first in a transaction around every write with the uid written
   * (the sharded adapter's slot fence: it throws to refuse the write).
   */
  constructor(
    private readonly pool: Pool,
    private readonly guard?: (conn: Connection, uids: readonly string[]) => Promise<void>,
  ) {}

  /** One write statement, behind the guard when there is one. */
  private async write(uid: Uid, sql: string, params: unknown[]): Promise<void> {
    const guard = this.guard;
    if (!guard) {
      await this.pool.query<ResultSetHeader>(sql, params);
      return;
    }
    await inTransaction(this.pool, async (conn) => {
      await guard(conn, [uid]);
      await conn.query<ResultSetHeader>(sql, params);
    });
  }

  private async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw translate(err);
    }
  }

  private async one(where: string, value: string): Promise<UserRecord | null> {
    return this.run(async () => {
      const [rows] = await this.pool.query<UserRow[]>(`SELECT ${USER_COLUMNS} FROM users WHERE ${where} = ? LIMIT 1`, [
        value,
      ]);
      return rows[0] ? userRecordOf(rows[0]) : null;
    });
  }

  async create(user: UserRecord): Promise<void> {
    await this.run(() =>
      this.write(user.uid, "INSERT INTO users (uid, name, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)", [
        user.uid,
        user.name,
        user.email.trim().toLowerCase(),
        user.passwordHash,
        user.createdAt,
      ]),
    );
  }

  byUid(uid: Uid): Promise<UserRecord | null> {
    return this.one("uid", uid);
  }

  byName(name: string): Promise<UserRecord | null> {
    return this.one("name", name);
  }

  byEmail(email: string): Promise<UserRecord | null> {
    return this.one("email", email.trim().toLowerCase());
  }

  async setPassword(uid: Uid, passwordHash: string): Promise<void> {
    await this.run(() => this.write(uid, "UPDATE users SET password_hash = ? WHERE uid = ?", [passwordHash, uid]));
  }

  /** One UPDATE (behind the guard when there is one); the schema's unique name refuses a taken one. */
  async rename(uid: Uid, name: string): Promise<boolean> {
    if (!isDecimalId(uid) || !(await this.byUid(uid))) return false;
    await this.run(() => this.write(uid, "UPDATE users SET name = ? WHERE uid = ?", [name, uid]));
    return true;
  }

  /** One DELETE of the row (behind the guard when there is one): its name and email are free again. */
  async delete(uid: Uid): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    const remove = async (db: Pick<Pool, "query">) => {
      const [result] = await db.query<ResultSetHeader>("DELETE FROM users WHERE uid = ?", [uid]);
      return result.affectedRows > 0;
    };
    const guard = this.guard;
    return this.run(() =>
      guard
        ? inTransaction(this.pool, async (conn) => {
            await guard(conn, [uid]);
            return remove(conn);
          })
        : remove(this.pool),
    );
  }

  async searchByNamePrefix(prefix: string, limit: number): Promise<UserRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (typeof prefix !== "string" || prefix === "" || max === 0) return [];
    return this.run(async () => {
      // uk_users_name makes the prefix a range scan; the collation makes it case-insensitive.
      const [rows] = await this.pool.query<UserRow[]>(
        `SELECT ${USER_COLUMNS} FROM users WHERE name LIKE ? ESCAPE '!' ORDER BY name, uid LIMIT ?`,
        [`${likePrefix(prefix)}%`, max],
      );
      return rows.map(userRecordOf);
    });
  }

  async existing(uids: Uid[]): Promise<Set<Uid>> {
    if (uids.length === 0) return new Set();
    return this.run(async () => {
      const [rows] = await this.pool.query<UserRow[]>("SELECT uid FROM users WHERE uid IN (?)", [uids]);
      return new Set(rows.map((r) => storedId(r.uid)));
    });
  }
}

/** prefix with LIKE's wildcards escaped (escape character "!"). */
export function likePrefix(prefix: string): string {
  return prefix.replace(/[!%_]/g, (c) => `!${c}`);
}

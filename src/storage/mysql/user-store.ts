import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import type { Uid, UserRecord, UserStore } from "../ports.js";
import type { Pool } from "./pool.js";

/** mysql2 error codes that mean the database did not answer, not that the query was wrong. */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "EPIPE",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_CON_COUNT_ERROR",
  "ER_SERVER_SHUTDOWN",
  "POOL_CLOSED",
]);

interface MysqlError {
  code?: string;
  fatal?: boolean;
  message?: string;
}

function translate(err: unknown): unknown {
  if (err instanceof AppError) return err;
  const e = err as MysqlError;
  if (e?.code === "ER_DUP_ENTRY") {
    if (e.message?.includes("uk_users_name")) return new AppError(ErrorCode.USER_EXISTS);
    if (e.message?.includes("uk_users_email")) return new AppError(ErrorCode.EMAIL_EXISTS);
  }
  if ((e?.code && UNAVAILABLE_CODES.has(e.code)) || e?.fatal) {
    return new AppError(ErrorCode.UNAVAILABLE, `mysql: ${e.code ?? e.message}`);
  }
  return err;
}

interface UserRow extends RowDataPacket {
  uid: string;
  name: string;
  email: string;
  password_hash: string;
  created_at: string;
}

const COLUMNS = "uid, name, email, password_hash, created_at";

function toRecord(row: UserRow): UserRecord {
  return {
    uid: String(row.uid),
    name: row.name,
    email: row.email,
    passwordHash: row.password_hash,
    createdAt: Number(row.created_at),
  };
}

/** Accounts in the users table (names and emails unique case-insensitively by the schema's collation). */
export class MysqlUserStore implements UserStore {
  constructor(private readonly pool: Pool) {}

  private async run<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw translate(err);
    }
  }

  private async one(where: string, value: string): Promise<UserRecord | null> {
    return this.run(async () => {
      const [rows] = await this.pool.query<UserRow[]>(`SELECT ${COLUMNS} FROM users WHERE ${where} = ? LIMIT 1`, [
        value,
      ]);
      return rows[0] ? toRecord(rows[0]) : null;
    });
  }

  async create(user: UserRecord): Promise<void> {
    await this.run(() =>
      this.pool.query<ResultSetHeader>(
        "INSERT INTO users (uid, name, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        [user.uid, user.name, user.email.trim().toLowerCase(), user.passwordHash, user.createdAt],
      ),
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
    await this.run(() =>
      this.pool.query<ResultSetHeader>("UPDATE users SET password_hash = ? WHERE uid = ?", [passwordHash, uid]),
    );
  }

  async existing(uids: Uid[]): Promise<Set<Uid>> {
    if (uids.length === 0) return new Set();
    return this.run(async () => {
      const [rows] = await this.pool.query<UserRow[]>("SELECT uid FROM users WHERE uid IN (?)", [uids]);
      return new Set(rows.map((r) => String(r.uid)));
    });
  }
}

import type { Uid, UserRecord } from "./ports.js";

/** A users row as both SQL adapters read it: sql/ has the one schema for MySQL and SQLite. */
export interface UserRow {
  uid: Uid;
  name: string;
  email: string;
  password_hash: string;
  /** A number from SQLite, a string from mysql2 (BIGINT as text). */
  created_at: number | string;
}

export const USER_COLUMNS = "uid, name, email, password_hash, created_at";

export function userRecordOf(row: UserRow): UserRecord {
  return {
    uid: row.uid,
    name: row.name,
    email: row.email,
    passwordHash: row.password_hash,
    createdAt: Number(row.created_at),
  };
}

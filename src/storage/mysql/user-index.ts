import type { RowDataPacket } from "mysql2/promise";
import { storedId, type Uid } from "../../ids/identifiers.js";
import { likePrefix } from "./user-store.js";

/** What runs a statement: a pool, or a connection inside a transaction. */
type Queryable = { query<T extends RowDataPacket[]>(sql: string, values?: unknown[]): Promise<[T, unknown]> };

/**
 * The unique-value indexes of users (user_names, user_emails: value → uid) on one MySQL
 * instance. The sharded user store places each row by its value and calls these on that
 * instance; the SQL lives here, with the rest of the MySQL adapter's.
 */
export interface IndexTable {
  table: "user_names" | "user_emails";
  column: "name" | "email";
}

export async function insertIndexRow(db: Queryable, index: IndexTable, value: string, uid: string): Promise<void> {
  await db.query(`INSERT INTO ${index.table} (${index.column}, uid, created_at) VALUES (?, ?, ?)`, [
    value,
    uid,
    Date.now(),
  ]);
}

/** Who holds value, and since when; null when nobody does. */
export async function indexHolder(
  db: Queryable,
  index: IndexTable,
  value: string,
): Promise<{ uid: Uid; createdAt: number } | null> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT uid, created_at FROM ${index.table} WHERE ${index.column} = ?`,
    [value],
  );
  const row = rows[0];
  return row ? { uid: storedId(row.uid), createdAt: Number(row.created_at) } : null;
}

/** Many value → uid rows in one statement (a bulk import: a value already held fails it). */
export async function insertIndexRows(
  db: Queryable,
  index: IndexTable,
  rows: { value: string; uid: Uid }[],
  now: number,
): Promise<void> {
  await db.query(`INSERT INTO ${index.table} (${index.column}, uid, created_at) VALUES ?`, [
    rows.map((r) => [r.value, r.uid, now]),
  ]);
}

/** Removes value → uid (only if uid still holds it). */
export async function deleteIndexRow(db: Queryable, index: IndexTable, value: string, uid: string): Promise<void> {
  await db.query(`DELETE FROM ${index.table} WHERE ${index.column} = ? AND uid = ?`, [value, uid]);
}

/** Up to limit names starting with prefix on this instance, by name (a range of the primary key). */
export async function namesWithPrefix(
  db: Queryable,
  prefix: string,
  limit: number,
): Promise<{ name: string; uid: Uid }[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    "SELECT name, uid FROM user_names WHERE name LIKE ? ESCAPE '!' ORDER BY name LIMIT ?",
    [`${likePrefix(prefix)}%`, limit],
  );
  return rows.map((r) => ({ name: String(r.name), uid: storedId(r.uid) }));
}

import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";

export type SqliteDatabase = Database.Database;

/** The database file of STORAGE_BACKEND=sqlite inside DATA_DIR. */
export const SQLITE_FILE_NAME = "shardchat.sqlite";

export function sqliteFileIn(dataDir: string): string {
  return join(dataDir, SQLITE_FILE_NAME);
}

/** How long a statement waits for another process's write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * Opens (creating it and its directory if missing) the one SQLite file. WAL lets readers run
 * beside the writer and other processes on the same machine share the file; synchronous=FULL
 * syncs the WAL on every COMMIT, so an acked message survives a power cut, as with InnoDB.
 */
export function openSqlite(file: string): SqliteDatabase {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

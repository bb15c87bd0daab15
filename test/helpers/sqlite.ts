import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqlite, type SqliteDatabase } from "../../src/storage/sqlite/database.js";
import { migrateSqlite } from "../../src/storage/sqlite/migrate.js";

export interface TempSqlite {
  db: SqliteDatabase;
  dir: string;
  /** Closes the database (if still open) and deletes its directory. */
  remove(): void;
}

/** A fresh, migrated SQLite file in its own temp directory. */
export function tempSqlite(tag = "sc-sqlite-"): TempSqlite {
  const dir = mkdtempSync(join(tmpdir(), tag));
  const db = openSqlite(join(dir, "test.sqlite"));
  migrateSqlite(db);
  return {
    db,
    dir,
    remove() {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

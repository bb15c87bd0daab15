import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../../log/logger.js";
import type { SqliteDatabase } from "./database.js";

export const SQLITE_SQL_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../../sql/sqlite");

/**
 * Applies every sql/sqlite/NNN_*.sql not yet recorded in schema_migrations, in order, each
 * in its own IMMEDIATE transaction: a second process migrating the same file waits for the
 * first and then finds the file recorded.
 */
export function migrateSqlite(db: SqliteDatabase, log?: Logger, dir = SQLITE_SQL_DIR): string[] {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const isApplied = db.prepare<[string]>("SELECT 1 FROM schema_migrations WHERE name = ?");
  const record = db.prepare<[string, number]>("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)");
  const files = readdirSync(dir)
    .filter((f) => /^\d+_.*\.sql$/.test(f))
    .sort();
  const applied: string[] = [];
  for (const file of files) {
    const apply = db.transaction(() => {
      if (isApplied.get(file)) return false;
      db.exec(readFileSync(join(dir, file), "utf8"));
      record.run(file, Date.now());
      return true;
    });
    if (apply.immediate()) {
      applied.push(file);
      log?.info({ migration: file, database: db.name }, "migration applied");
    }
  }
  return applied;
}

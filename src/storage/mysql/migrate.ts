import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";
import type { Logger } from "../../log/logger.js";

export const SQL_DIR = join(dirname(fileURLToPath(import.meta.url)), "../../../sql");

/**
 * Creates the database named in `url` if missing and applies every sql/NNN_*.sql not yet
 * recorded in schema_migrations, in order. Safe to run from several processes at once: a
 * named lock serializes them.
 */
export async function migrate(url: string, log?: Logger): Promise<string[]> {
  const parsed = new URL(url);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_]+$/.test(database)) throw new Error(`MYSQL_URL: bad database name "${database}"`);
  parsed.pathname = "/";
  const conn = await mysql.createConnection({ uri: parsed.toString(), multipleStatements: true });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4`);
    await conn.query(`USE \`${database}\``);
    await conn.query("SELECT GET_LOCK('shardchat_migrate', 60)");
    await conn.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR(128) PRIMARY KEY, applied_at BIGINT NOT NULL)",
    );
    const [rows] = await conn.query<mysql.RowDataPacket[]>("SELECT name FROM schema_migrations");
    const done = new Set(rows.map((r) => r.name as string));
    const files = (await readdir(SQL_DIR)).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await conn.query(await readFile(join(SQL_DIR, file), "utf8"));
      await conn.query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", [file, Date.now()]);
      applied.push(file);
      log?.info({ migration: file, database }, "migration applied");
    }
    await conn.query("SELECT RELEASE_LOCK('shardchat_migrate')");
    return applied;
  } finally {
    await conn.end();
  }
}

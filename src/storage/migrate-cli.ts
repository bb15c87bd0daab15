import { loadConfig } from "../config/load.js";
import { createLogger } from "../log/logger.js";
import { migrate } from "./mysql/migrate.js";
import { configuredInstances, migrateShards } from "./sharded/shards.js";
import { openSqlite, sqliteFileIn } from "./sqlite/database.js";
import { migrateSqlite } from "./sqlite/migrate.js";

const config = loadConfig();
const log = createLogger("migrate", config.LOG_LEVEL);
let applied: string[];
if (config.STORAGE_BACKEND === "mysql" && config.MYSQL_SHARDS.trim() !== "") {
  // Every shard instance: what the services do at start unless MYSQL_MIGRATE=false.
  applied = await migrateShards(configuredInstances(config), log);
} else if (config.STORAGE_BACKEND === "mysql") {
  applied = await migrate(config.MYSQL_URL, log);
} else {
  const db = openSqlite(sqliteFileIn(config.DATA_DIR));
  try {
    applied = migrateSqlite(db, log);
  } finally {
    db.close();
  }
}
log.info({ applied, backend: config.STORAGE_BACKEND }, applied.length ? "migrations applied" : "schema up to date");

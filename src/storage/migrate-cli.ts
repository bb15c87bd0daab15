import { loadConfig } from "../config/load.js";
import { createLogger, logOutputOf } from "../log/logger.js";
import { grantServiceUsers, parseServiceUsers } from "./mysql/grants.js";
import { migrate } from "./mysql/migrate.js";
import { configuredInstances, migrateShards, Shards } from "./sharded/shards.js";
import { openSqlite, sqliteFileIn } from "./sqlite/database.js";
import { migrateSqlite } from "./sqlite/migrate.js";

const config = loadConfig();
const log = createLogger("migrate", config.LOG_LEVEL, logOutputOf(config));
let applied: string[];
const serviceUsers = parseServiceUsers(config.MYSQL_SERVICE_USERS);
if (config.STORAGE_BACKEND === "mysql" && config.MYSQL_SHARDS.trim() !== "") {
  // Every shard instance: what the services do at start unless MYSQL_MIGRATE=false.
  const instances = configuredInstances(config);
  applied = await migrateShards(instances, log);
  // The first shard map too, so services whose users only read it find one.
  await (await Shards.open(config, log)).close();
  for (const instance of instances) await grantServiceUsers(instance.url, serviceUsers, log);
} else if (config.STORAGE_BACKEND === "mysql") {
  applied = await migrate(config.MYSQL_URL, log);
  await grantServiceUsers(config.MYSQL_URL, serviceUsers, log);
} else {
  const db = openSqlite(sqliteFileIn(config.DATA_DIR));
  try {
    applied = migrateSqlite(db, log);
  } finally {
    db.close();
  }
}
log.info({ applied, backend: config.STORAGE_BACKEND }, applied.length ? "migrations applied" : "schema up to date");

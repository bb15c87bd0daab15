import mysql from "mysql2/promise";
import type { Config } from "../../config/settings.js";

export type Pool = mysql.Pool;

/** The one way to open MySQL: a pool on MYSQL_URL. BIGINTs come back as strings (snowflakes). */
export function createPool(config: Pick<Config, "MYSQL_URL" | "MYSQL_POOL_SIZE">): Pool {
  return mysql.createPool({
    uri: config.MYSQL_URL,
    connectionLimit: config.MYSQL_POOL_SIZE,
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: "utf8mb4",
    waitForConnections: true,
  });
}

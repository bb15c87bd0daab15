import mysql from "mysql2/promise";
import { type Config, settings } from "../../config/settings.js";
import { type BoundedPool, withTimeouts } from "./timeouts.js";

export type Pool = BoundedPool;

/**
 * The one way to open MySQL: a pool on MYSQL_URL. BIGINTs come back as strings (snowflakes).
 * Multiple statements per query let a group commit send its transaction in two round trips;
 * every query here binds its values as parameters (escaped by the driver), never by concatenation.
 */
export type PoolSettings = Pick<Config, "MYSQL_URL" | "MYSQL_POOL_SIZE"> &
  Partial<Pick<Config, "MYSQL_CONNECT_TIMEOUT_MS" | "MYSQL_ACQUIRE_TIMEOUT_MS" | "MYSQL_QUERY_TIMEOUT_MS">>;

/** Every wait is bounded (timeouts.ts); a timeout left out is the setting's default. */
export function createPool(config: PoolSettings): Pool {
  const ms = (name: "MYSQL_CONNECT_TIMEOUT_MS" | "MYSQL_ACQUIRE_TIMEOUT_MS" | "MYSQL_QUERY_TIMEOUT_MS") =>
    config[name] ?? Number(settings[name].default);
  const pool = mysql.createPool({
    uri: config.MYSQL_URL,
    connectTimeout: ms("MYSQL_CONNECT_TIMEOUT_MS"),
    connectionLimit: config.MYSQL_POOL_SIZE,
    supportBigNumbers: true,
    bigNumberStrings: true,
    charset: "utf8mb4",
    waitForConnections: true,
    multipleStatements: true,
    // Capturing the caller's stack on every query was 3 % of a busy chat node's CPU; storage
    // errors are mapped to codes and logged with the statement's own error.
    trace: false,
    // Every query here is a text query; mysql2's default cache of 16,000 prepared statements
    // reserves about 512 KB per connection up front.
    maxPreparedStatements: 256,
  });
  return withTimeouts(pool, { acquireMs: ms("MYSQL_ACQUIRE_TIMEOUT_MS"), queryMs: ms("MYSQL_QUERY_TIMEOUT_MS") });
}

import { randomBytes } from "node:crypto";
import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/settings.js";

/**
 * A config for one test file: its own MySQL database and Redis key prefix on the machine's
 * real MariaDB and Redis, so test files never see each other's data. The backends are MySQL
 * and Redis (not the embedded default) unless overridden.
 */
export function testConfig(overrides: Partial<Config> = {}): Config {
  const tag = randomBytes(4).toString("hex");
  const base = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
  const mysqlUrl = new URL(base.MYSQL_URL);
  mysqlUrl.pathname = `/sc_test_${tag}`;
  return {
    ...base,
    // The distributed adapters: the tests of services and processes are about MySQL and Redis.
    STORAGE_BACKEND: "mysql",
    ROUTING_BACKEND: "redis",
    MYSQL_URL: mysqlUrl.toString(),
    REDIS_KEY_PREFIX: `sc-test-${tag}:`,
    ...overrides,
  };
}

/** The same settings as environment variables, for spawning a service process. */
export function configEnv(config: Config): Record<string, string> {
  // An unset optional setting (null) is left out: "null" would be read back as a value.
  return Object.fromEntries(
    Object.entries(config)
      .filter(([, v]) => v !== null && v !== undefined)
      .map(([k, v]) => [k, String(v)]),
  );
}

/** Drops the test database (call in afterAll). */
export async function dropTestDatabase(config: Config): Promise<void> {
  const mysql = (await import("mysql2/promise")).default;
  const url = new URL(config.MYSQL_URL);
  const db = url.pathname.slice(1);
  url.pathname = "/";
  const conn = await mysql.createConnection({ uri: url.toString() });
  await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
  await conn.end();
}

import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
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

/** A TCP port free right now on 127.0.0.1. */
/**
 * Below the kernel's ephemeral range (32768-60999 here): a port found free there by listening
 * on port 0 can be taken by any outgoing connection (a MySQL or Redis client) before the
 * service that was meant to bind it starts. Each vitest worker gets its own block, so two
 * files running at once do not pick the same port either.
 */
const PORT_BLOCK = 3000;
const PORT_FLOOR = 20_000;
const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port nothing listens on, for a service a test starts later; never the same twice in one process. */
export function freePort(): Promise<number> {
  return freePortRun(1);
}

/**
 * The first of `count` consecutive free ports (a stack's chat nodes take base + i), none of
 * them handed out before in this process, and none handed out again.
 */
export async function freePortRun(count: number): Promise<number> {
  const block = Number(process.env.VITEST_POOL_ID ?? 0) % 4;
  const start = PORT_FLOOR + block * PORT_BLOCK;
  for (let tries = 0; tries < PORT_BLOCK; tries++) {
    const first = start + Math.floor(Math.random() * (PORT_BLOCK - count));
    const run = Array.from({ length: count }, (_, i) => first + i);
    if (run.some((port) => handedOut.has(port))) continue;
    let free = true;
    for (const port of run) if (!(await canListen(port))) free = false;
    if (!free) continue;
    for (const port of run) handedOut.add(port);
    return first;
  }
  throw new Error(`no ${count} free ports in a row in ${start}-${start + PORT_BLOCK - 1}`);
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

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createAdapters, requireSharedRouting } from "../src/compose.js";
import { ConfigError, loadConfig } from "../src/config/load.js";
import { MemoryWorkerIdLeases } from "../src/ids/memory-worker-leases.js";
import { RedisWorkerIdLeases } from "../src/ids/worker-leases.js";
import { createLogger } from "../src/log/logger.js";
import { LogMailer } from "../src/mail/log-mailer.js";
import { MemorySessionRoutes } from "../src/routing/memory/session-routes.js";
import { RedisSessionRoutes } from "../src/routing/redis/session-routes.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { MysqlUserStore } from "../src/storage/mysql/user-store.js";
import { openSqlite, sqliteFileIn } from "../src/storage/sqlite/database.js";
import { migrateSqlite, SQLITE_SQL_DIR } from "../src/storage/sqlite/migrate.js";
import { SqliteUserStore } from "../src/storage/sqlite/user-store.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { ROOT } from "./helpers/processes.js";

const log = createLogger("test", "silent");
const dirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "sc-compose-"));
  dirs.push(dir);
  return dir;
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("createAdapters", () => {
  it("defaults to SQLite in DATA_DIR (created if missing) and in-memory routing; data survives reopening", async () => {
    const dataDir = join(tempDir(), "nested", "data");
    const config = { ...loadConfig({}), DATA_DIR: dataDir };
    expect(config.STORAGE_BACKEND).toBe("sqlite");
    expect(config.ROUTING_BACKEND).toBe("memory");

    const first = await createAdapters(config, log);
    expect(first.users).toBeInstanceOf(SqliteUserStore);
    expect(first.routes).toBeInstanceOf(MemorySessionRoutes);
    expect(first.workerLeases).toBeInstanceOf(MemoryWorkerIdLeases);
    expect(first.mailer).toBeInstanceOf(LogMailer);
    expect(first.storageLocation).toBe(sqliteFileIn(dataDir));
    expect(existsSync(sqliteFileIn(dataDir))).toBe(true);
    await first.users.create({
      uid: "18446744073709551615",
      name: "keep",
      email: "keep@example.com",
      passwordHash: "h",
      createdAt: 1,
    });
    await first.close();
    await first.close();

    const second = await createAdapters(config, log);
    try {
      expect((await second.users.byName("KEEP"))?.uid).toBe("18446744073709551615");
      // Routing state is per process (per createAdapters), never in the file.
      expect((await second.routes.lookup(["1"])).size).toBe(0);
    } finally {
      await second.close();
    }
  });

  it("records applied SQLite migrations and applies each once", () => {
    const db = openSqlite(join(tempDir(), "m.sqlite"));
    try {
      // Every file of sql/sqlite, in name order (each issue adds its own).
      const files = readdirSync(SQLITE_SQL_DIR)
        .filter((f) => /^\d+_.*\.sql$/.test(f))
        .sort();
      expect(files[0]).toBe("001_core.sql");
      expect(migrateSqlite(db)).toEqual(files);
      expect(migrateSqlite(db)).toEqual([]);
      const names = db.prepare("SELECT name FROM schema_migrations ORDER BY name").all();
      expect(names).toEqual(files.map((name) => ({ name })));
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      db.close();
    }
  });

  it("builds the MySQL and Redis adapters when configured so", async () => {
    const config = testConfig();
    const adapters = await createAdapters(config, log);
    try {
      expect(adapters.users).toBeInstanceOf(MysqlUserStore);
      expect(adapters.messages).toBeInstanceOf(MysqlMessageStore);
      expect(adapters.routes).toBeInstanceOf(RedisSessionRoutes);
      expect(adapters.workerLeases).toBeInstanceOf(RedisWorkerIdLeases);
      expect(await adapters.users.byName("nobody")).toBeNull();
      await adapters.tokens.put("1", { token: "t", expiresAtMs: Date.now() + 60_000 });
      expect((await adapters.tokens.get("1"))?.token).toBe("t");
    } finally {
      await adapters.close();
      await dropTestDatabase(config);
    }
  });
});

describe("requireSharedRouting", () => {
  it("refuses in-memory routing for a service run as its own process, naming the setting", () => {
    expect(() => requireSharedRouting({ ROUTING_BACKEND: "memory" }, "gate")).toThrow(ConfigError);
    expect(() => requireSharedRouting({ ROUTING_BACKEND: "memory" }, "gate")).toThrow(/ROUTING_BACKEND/);
    expect(() => requireSharedRouting({ ROUTING_BACKEND: "redis" }, "gate")).not.toThrow();
  });

  it.each(["status", "verify", "gate", "chat"])("src/%s/main.ts exits at once on ROUTING_BACKEND=memory", (service) => {
    const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, `src/${service}/main.ts`)], {
      cwd: ROOT,
      env: { ...process.env, ROUTING_BACKEND: "memory", DATA_DIR: tempDir() },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.status).not.toBe(0);
    expect(run.status).not.toBeNull();
    expect(run.stderr).toMatch(/ROUTING_BACKEND=memory/);
  });
});

import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAccountDeletionWorker, createStorageAdapters } from "../src/compose.js";
import { createLogger } from "../src/log/logger.js";
import { MemoryJobLocks } from "../src/routing/memory/job-locks.js";
import { createRedis } from "../src/routing/redis-client.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { testConfig } from "./helpers/env.js";
import { textMessage } from "./helpers/messages.js";
import { freePort } from "./helpers/ports.js";
import { ROOT, waitFor } from "./helpers/processes.js";

const run = promisify(execFile);
const log = createLogger("credentials-test", "warn");

// Compose's credentials (docker-compose.yml), on this machine's Redis and MariaDB: a Redis that
// requires a password, and the MySQL users its init script makes, which may only touch rows.
describe("a Redis that requires a password (REDIS_PASSWORD)", () => {
  let port: number;
  let server: ReturnType<typeof spawn>;

  beforeAll(async () => {
    port = await freePort();
    server = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", "s3cret-pw"],
      {
        stdio: "ignore",
      },
    );
    await waitFor("redis-server with a password", async () =>
      run("redis-cli", ["-p", String(port), "ping"]).then(
        () => true,
        () => false,
      ),
    );
  });

  afterAll(() => {
    server?.kill();
  });

  it("is used with the setting and refused without it", async () => {
    const url = `redis://127.0.0.1:${port}`;
    const withPassword = createRedis({ REDIS_URL: url, REDIS_PASSWORD: "s3cret-pw" });
    const without = createRedis({ REDIS_URL: url, REDIS_PASSWORD: "" });
    without.on("error", () => undefined);
    try {
      await withPassword.set("k", "v");
      expect(await withPassword.get("k")).toBe("v");
      await expect(without.get("k")).rejects.toThrow(/NOAUTH/);
    } finally {
      withPassword.disconnect();
      without.disconnect();
    }
  });
});

describe("compose's MySQL users (ops/compose/mariadb-users.sh, granted by the migrate job) with MYSQL_MIGRATE=false", () => {
  const base = testConfig();
  const admin = new URL(base.MYSQL_URL);
  const passwords = { gate: "gate0123456789abcdef", chat: "chat0123456789abcdef" };
  const database = "shardchat";
  const urlOf = (service: "gate" | "chat") =>
    `mysql://shardchat_${service}:${passwords[service]}@${admin.host}/${database}`;
  let root: mysql.Connection;

  beforeAll(async () => {
    root = await mysql.createConnection({ host: admin.hostname, port: Number(admin.port || 3306), user: "root" });
    // The script as the image runs it: docker_process_sql is the entrypoint's root client.
    await run(
      "bash",
      [
        "-c",
        `docker_process_sql() { mysql -uroot -h${admin.hostname} -P${admin.port || 3306} "$@"; }; source ${join(ROOT, "ops/compose/mariadb-users.sh")}`,
      ],
      {
        env: {
          ...process.env,
          SHARDCHAT_GATE_DB_PASSWORD: passwords.gate,
          SHARDCHAT_CHAT_DB_PASSWORD: passwords.chat,
        },
      },
    );
    // An older setup's grant on the whole database, which the migrate job takes back.
    await root.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ${database}.* TO 'shardchat_gate'@'%'`);
    // The migrate job as compose runs it: the schema and the shard map as root, then the grants.
    const rootUrl = `mysql://root@${admin.host}/${database}`;
    await run("node", ["--import", "tsx", "src/storage/migrate-cli.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        LOG_LEVEL: "warn",
        STORAGE_BACKEND: "mysql",
        MYSQL_URL: rootUrl,
        MYSQL_SHARDS: rootUrl,
        MYSQL_SERVICE_USERS: "gate=shardchat_gate,chat=shardchat_chat",
      },
    });
  }, 120_000);

  afterAll(async () => {
    await root?.query("DROP USER IF EXISTS 'shardchat_gate'@'%', 'shardchat_chat'@'%'");
    await root?.query(`DROP DATABASE IF EXISTS ${database}`);
    await root?.end();
  });

  /** Storage as the service opens it (sharded over the one instance: the map and the fence are read). */
  const storageAs = (service: "gate" | "chat") =>
    createStorageAdapters(
      { ...base, MYSQL_URL: urlOf(service), MYSQL_SHARDS: urlOf(service), MYSQL_MIGRATE: false },
      log,
    );

  it("the chat nodes' user stores and reads chat data, reads users, and may not write users or change the schema", async () => {
    const storage = await storageAs("chat");
    try {
      const { message } = await storage.messages.append(
        textMessage("7001", "7002", "as shardchat_chat", { msgId: "99001", clientMsgId: "cred-1", sentAtMs: 1 }),
      );
      expect((await storage.messages.pending("7002", 10)).messages.map((m) => m.msgId)).toEqual([message.msgId]);
      expect(await storage.users.byUid("7001")).toBeNull();
    } finally {
      await storage.close();
    }
    const user = await mysql.createConnection({ uri: urlOf("chat") });
    try {
      await expect(
        user.query("INSERT INTO users (uid, name, email, password_hash, created_at) VALUES (1, 'x', 'x', 'x', 0)"),
      ).rejects.toThrow(/denied/);
      await expect(user.query("CREATE TABLE intruder (id INT)")).rejects.toThrow(/denied/);
      await expect(user.query("SELECT 1 FROM mysql.user LIMIT 1")).rejects.toThrow(/denied/);
      await expect(user.query("DELETE FROM shard_map")).rejects.toThrow(/denied/);
    } finally {
      await user.end();
    }
    // Migrations at start need more than this user has: why compose runs them apart.
    await expect(migrate(urlOf("chat"))).rejects.toThrow(/denied/);
  });

  it("gate's user registers users and keeps file metadata, and may not read or write messages", async () => {
    const storage = await storageAs("gate");
    try {
      await storage.users.create({
        uid: "7101",
        name: "credgate",
        email: "credgate@example.test",
        passwordHash: "x",
        createdAt: 1,
      });
      expect((await storage.users.byName("credgate"))?.uid).toBe("7101");
      await storage.files.create({
        id: "7201",
        owner: "7101",
        convId: "p:7101:7102",
        name: "f",
        size: 1,
        contentType: "text/plain",
        createdAt: 1,
      });
      expect((await storage.files.byId("7201"))?.owner).toBe("7101");
      expect(await storage.messages.isMember("p:7101:7102", "7101")).toBe(false);
      // Gate's half of an account deletion: the request row, then the profile (issue 17).
      await storage.accountDeletions.request("7101", 5, true);
      expect(await storage.users.delete("7101")).toBe(true);
      expect(await storage.users.byName("credgate")).toBeNull();
    } finally {
      await storage.close();
    }
    const user = await mysql.createConnection({ uri: urlOf("gate") });
    try {
      await expect(user.query("SELECT body FROM messages LIMIT 1")).rejects.toThrow(/denied/);
      await expect(
        user.query(
          "INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES ('x', 1, 0, 0, 0)",
        ),
      ).rejects.toThrow(/denied/);
      await expect(user.query("SELECT 1 FROM friendships LIMIT 1")).rejects.toThrow(/denied/);
    } finally {
      await user.end();
    }
  });

  it("the chat nodes' user carries out the account deletion gate's user recorded", async () => {
    const storage = await storageAs("chat");
    try {
      const worker = createAccountDeletionWorker(
        { ...storage, locks: new MemoryJobLocks() },
        { ...base, ACCOUNT_DELETION_POLL_MS: 60_000 },
        log,
      );
      const passes = await worker.runOnce();
      expect(passes.reduce((n, p) => n + p.done, 0)).toBe(1);
      expect(passes.reduce((n, p) => n + p.failed, 0)).toBe(0);
      for (const instance of storage.accountDeletions.instances()) {
        expect((await storage.accountDeletions.pending(instance, "0", 10)).deletions).toEqual([]);
      }
    } finally {
      await storage.close();
    }
  });
});

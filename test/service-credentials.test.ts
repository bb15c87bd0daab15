import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStorageAdapters } from "../src/compose.js";
import { createLogger } from "../src/log/logger.js";
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

describe("compose's MySQL users (ops/compose/mariadb-users.sh) with MYSQL_MIGRATE=false", () => {
  const base = testConfig();
  const admin = new URL(base.MYSQL_URL);
  const password = "chat0123456789abcdef";
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
          SHARDCHAT_GATE_DB_PASSWORD: "gate0123456789abcdef",
          SHARDCHAT_CHAT_DB_PASSWORD: password,
        },
      },
    );
    // The migrate job's part, as root.
    await migrate(`mysql://root@${admin.host}/shardchat`);
  });

  afterAll(async () => {
    await root?.query("DROP USER IF EXISTS 'shardchat_gate'@'%', 'shardchat_chat'@'%'");
    await root?.query("DROP DATABASE IF EXISTS shardchat");
    await root?.end();
  });

  it("stores and reads chat data as the chat nodes' user, which may not change the schema", async () => {
    const url = `mysql://shardchat_chat:${password}@${admin.host}/shardchat`;
    const storage = await createStorageAdapters(
      { ...base, MYSQL_URL: url, MYSQL_SHARDS: "", MYSQL_MIGRATE: false },
      log,
    );
    try {
      const { message } = await storage.messages.append(
        textMessage("7001", "7002", "as shardchat_chat", { msgId: "99001", clientMsgId: "cred-1", sentAtMs: 1 }),
      );
      expect((await storage.messages.pending("7002", 10)).messages.map((m) => m.msgId)).toEqual([message.msgId]);
    } finally {
      await storage.close();
    }
    const user = await mysql.createConnection({ uri: url });
    try {
      await expect(user.query("CREATE TABLE intruder (id INT)")).rejects.toThrow(/denied/);
      await expect(user.query("SELECT 1 FROM mysql.user LIMIT 1")).rejects.toThrow(/denied/);
    } finally {
      await user.end();
    }
    // Migrations at start need more than this user has: why compose runs them apart.
    await expect(migrate(url)).rejects.toThrow(/denied/);
  });
});

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./helpers/processes.js";

const run = promisify(execFile);

// Docker cannot run here; Debian's docker-compose at least parses and validates the file.
beforeAll(async () => {
  const present = await run("bash", ["-c", "command -v docker-compose"]).then(
    () => true,
    () => false,
  );
  if (!present) {
    await run(
      "bash",
      ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose"],
      {
        timeout: 300_000,
      },
    );
  }
}, 320_000);

/** What .env must hold (README, "Docker"): every credential, none with a default. */
const SECRETS = {
  INTERNAL_AUTH_TOKEN: "0123456789abcdef0123456789abcdef",
  REDIS_PASSWORD: "redis0123456789abcdef",
  MARIADB_ROOT_PASSWORD: "root0123456789abcdef",
  SHARDCHAT_GATE_DB_PASSWORD: "gate0123456789abcdef",
  SHARDCHAT_CHAT_DB_PASSWORD: "chat0123456789abcdef",
  SHARDCHAT_S3_SECRET: "s3secret0123456789abcdef",
  GRAFANA_ADMIN_PASSWORD: "grafana0123456789abcdef",
};

describe("docker-compose.yml", () => {
  it.each(Object.keys(SECRETS))("refuses to start without %s", async (name) => {
    const env: Record<string, string | undefined> = { ...process.env, ...SECRETS };
    delete env[name];
    await expect(run("docker-compose", ["-f", "docker-compose.yml", "config"], { cwd: ROOT, env })).rejects.toThrow(
      new RegExp(name),
    );
  });

  it("gives MariaDB a root password and each service its own user, and Redis a password", async () => {
    const env = { ...process.env, ...SECRETS };
    const { stdout } = await run("docker-compose", ["-f", "docker-compose.yml", "config"], { cwd: ROOT, env });
    expect(stdout).not.toContain("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD");
    // root only in the one-shot migrate job; gate and the chat nodes as their own users.
    expect(stdout.match(/mysql:\/\/root:/g)?.length).toBe(4);
    expect(stdout).not.toContain("mysql://root@");
    expect(stdout.match(/MYSQL_URL: mysql:\/\/shardchat_gate:gate0123456789abcdef@/g)?.length).toBe(1);
    expect(stdout.match(/MYSQL_URL: mysql:\/\/shardchat_chat:chat0123456789abcdef@/g)?.length).toBe(3);
    expect(stdout.match(/MYSQL_MIGRATE: "false"/g)?.length).toBe(6);
    // Every Redis node requires the password; replicas use it toward their master.
    expect(stdout.match(/- --requirepass\n\s+- redis0123456789abcdef/g)?.length).toBe(6);
    expect(stdout.match(/- --masterauth\n\s+- redis0123456789abcdef/g)?.length).toBe(6);
    expect(stdout.match(/REDIS_PASSWORD: redis0123456789abcdef/g)?.length).toBe(6);
    // The users the MariaDB image makes at first start get nothing there: the migrate job
    // grants each its tables (service-credentials.test.ts runs both).
    const users = await readFile(join(ROOT, "ops/compose/mariadb-users.sh"), "utf8");
    expect(users.match(/CREATE USER IF NOT EXISTS '(shardchat_\w+)'/g)?.length).toBe(2);
    expect(users).not.toMatch(/GRANT/);
    expect(stdout).toContain("MYSQL_SERVICE_USERS: gate=shardchat_gate,chat=shardchat_chat");
    // Files in MinIO (README "Files"): gate signs with the same secret MinIO's root has.
    expect(stdout).toContain("FILE_STORE: s3");
    expect(stdout.match(/S3_SECRET_ACCESS_KEY: s3secret0123456789abcdef/g)?.length).toBe(1);
    expect(stdout.match(/MINIO_ROOT_PASSWORD: s3secret0123456789abcdef/g)?.length).toBe(2);
  });

  it("passes docker-compose config and holds the multi-shard topology", async () => {
    const env = { ...process.env, ...SECRETS };
    const { stdout } = await run("docker-compose", ["-f", "docker-compose.yml", "config"], { cwd: ROOT, env });
    const { stdout: services } = await run("docker-compose", ["-f", "docker-compose.yml", "config", "--services"], {
      cwd: ROOT,
      env,
    });
    expect(services.trim().split("\n").sort()).toEqual(
      [
        ...["mariadb-1", "mariadb-2", "mariadb-3", "migrate"],
        ...["redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6", "redis-cluster"],
        ...["status", "verify", "gate", "chat-1", "chat-2", "chat-3"],
        ...["minio", "minio-bucket"],
        ...["prometheus", "grafana"],
      ].sort(),
    );
    expect(stdout).toContain("--cluster-replicas 1");
    for (const n of [1, 2, 3]) expect(stdout).toContain(`CHAT_GRPC_PUBLIC_HOST: chat-${n}`);
    expect(stdout).toContain(
      "MYSQL_SHARDS: mysql://shardchat_chat:chat0123456789abcdef@mariadb-1:3306/shardchat,mysql://shardchat_chat:chat0123456789abcdef@mariadb-2:3306",
    );
    expect(stdout.match(/INTERNAL_AUTH_TOKEN: 0123456789abcdef0123456789abcdef/g)?.length).toBe(6);
  });

  it("scrapes every service's ops server with Prometheus, and provisions Grafana's dashboard", async () => {
    const env = { ...process.env, ...SECRETS };
    const { stdout } = await run("docker-compose", ["-f", "docker-compose.yml", "config"], { cwd: ROOT, env });
    // Each service that gets the common settings serves /metrics on 9464 of its container.
    expect(stdout.match(/METRICS_PORT: ["']9464["']/g)?.length).toBe(6);
    const scrape = await readFile(join(ROOT, "ops/prometheus/prometheus-compose.yml"), "utf8");
    expect([...scrape.matchAll(/targets: \["([\w-]+):9464"\]/g)].map((m) => m[1]).sort()).toEqual(
      ["status", "verify", "gate", "chat-1", "chat-2", "chat-3"].sort(),
    );
    expect(stdout).toContain("--config.file=/etc/prometheus/prometheus-compose.yml");
    expect(stdout).toMatch(/- \S+\/ops\/prometheus:\/etc\/prometheus:ro$/m);
    expect(stdout).toMatch(/- \S+\/ops\/grafana\/provisioning:\/etc\/grafana\/provisioning:ro$/m);
    expect(stdout).toMatch(/- \S+\/ops\/grafana\/dashboards:\/etc\/grafana\/dashboards:ro$/m);
    expect(stdout).toContain("GF_SECURITY_ADMIN_PASSWORD: grafana0123456789abcdef");
    // Neither is reachable from outside the host.
    expect(stdout).toMatch(/- 127\.0\.0\.1:9090:9090\/tcp$/m);
    expect(stdout).toMatch(/- 127\.0\.0\.1:3000:3000\/tcp$/m);
    const provider = await readFile(join(ROOT, "ops/grafana/provisioning/dashboards/shardchat.yml"), "utf8");
    expect(provider).toContain("path: /etc/grafana/dashboards");
    const source = await readFile(join(ROOT, "ops/grafana/provisioning/datasources/prometheus.yml"), "utf8");
    expect(source).toContain("url: http://prometheus:9090");
    expect(source).toContain("uid: prometheus");
  });

  it("builds an image that runs as an unprivileged user and leaves secrets and local state out", async () => {
    // No Docker engine here: the files are read as `docker build` would.
    const dockerfile = await readFile(join(ROOT, "Dockerfile"), "utf8");
    const users = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBeDefined();
    expect(["root", "0"]).not.toContain(users.at(-1));
    expect(dockerfile.indexOf("USER")).toBeGreaterThan(dockerfile.lastIndexOf("RUN "));
    const ignored = (await readFile(join(ROOT, ".dockerignore"), "utf8")).split("\n").map((l) => l.trim());
    for (const path of [".env", ".stack", "node_modules", ".git", "data"]) expect(ignored).toContain(path);
  });
});

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

describe("docker-compose.yml", () => {
  it("refuses to start without the services' INTERNAL_AUTH_TOKEN", async () => {
    const { INTERNAL_AUTH_TOKEN: _, ...env } = process.env;
    await expect(run("docker-compose", ["-f", "docker-compose.yml", "config"], { cwd: ROOT, env })).rejects.toThrow(
      /INTERNAL_AUTH_TOKEN/,
    );
  });

  it("passes docker-compose config and holds the multi-shard topology", async () => {
    const env = { ...process.env, INTERNAL_AUTH_TOKEN: "0123456789abcdef0123456789abcdef" };
    const { stdout } = await run("docker-compose", ["-f", "docker-compose.yml", "config"], { cwd: ROOT, env });
    const { stdout: services } = await run("docker-compose", ["-f", "docker-compose.yml", "config", "--services"], {
      cwd: ROOT,
      env,
    });
    expect(services.trim().split("\n").sort()).toEqual(
      [
        ...["mariadb-1", "mariadb-2", "mariadb-3"],
        ...["redis-1", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6", "redis-cluster"],
        ...["status", "verify", "gate", "chat-1", "chat-2", "chat-3"],
      ].sort(),
    );
    expect(stdout).toContain("--cluster-replicas 1");
    for (const n of [1, 2, 3]) expect(stdout).toContain(`CHAT_GRPC_PUBLIC_HOST: chat-${n}`);
    expect(stdout).toContain("MYSQL_SHARDS: mysql://root@mariadb-1:3306/shardchat,mysql://root@mariadb-2:3306");
    expect(stdout.match(/INTERNAL_AUTH_TOKEN: 0123456789abcdef0123456789abcdef/g)?.length).toBe(6);
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

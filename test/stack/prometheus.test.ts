import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/ports.js";
import { LOG_DIR, ROOT, waitFor } from "../helpers/processes.js";
import { restoreKilledRedisMaster, type StackServices, startStackServices } from "../helpers/stack.js";

/**
 * Debian's Prometheus over the local stack: ops/prometheus/stack-config.sh's scrape config for
 * this run's ports (1 s scrapes and evaluations) with the alert rules of ops/prometheus/rules.
 * Every service is scraped; kill -9 of a chat node fires ChatNodeDown for it, kill -9 of a Redis
 * master fires RedisMasterLost, and once what was killed is back (as chaos.test.ts and
 * chat-across-nodes.test.ts restore it) the alert resolves.
 */
const run = promisify(execFile);
const RULES = join(ROOT, "ops/prometheus/rules");

let stack: StackServices;
let prometheus: ChildProcess | undefined;
let promUrl: string;
let workDir: string;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface Alert {
  labels: Record<string, string>;
  state: "pending" | "firing";
}
interface Target {
  labels: Record<string, string>;
  health: "up" | "down" | "unknown";
  lastError: string;
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${promUrl}/api/v1/${path}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.error}`);
  return body.data;
}

const query = async (promql: string) =>
  (await api<{ result: Sample[] }>(`query?query=${encodeURIComponent(promql)}`)).result;
const alerts = async (name: string) =>
  (await api<{ alerts: Alert[] }>("alerts")).alerts.filter((a) => a.labels.alertname === name);
/** The alerts of rule `name` once one of them is firing (Prometheus's `for:` has passed). */
const firing = (name: string, timeoutMs: number) =>
  waitFor(
    `${name} firing`,
    async () => {
      const list = await alerts(name);
      return list.some((a) => a.state === "firing") ? list : undefined;
    },
    timeoutMs,
  );
const targets = async () => (await api<{ activeTargets: Target[] }>("targets?state=active")).activeTargets;

/** A Redis Cluster master of the stack: its port and its pid (as test/chaos finds them). */
async function aRedisMaster(): Promise<{ port: number; pid: number }> {
  for (const port of stack.stack.redisPorts) {
    const { stdout } = await run("redis-cli", ["-p", String(port), "info", "server"]).catch(() => ({ stdout: "" }));
    const role = await run("redis-cli", ["-p", String(port), "role"]).catch(() => ({ stdout: "" }));
    const pid = /process_id:(\d+)/.exec(stdout)?.[1];
    if (pid && role.stdout.startsWith("master")) return { port, pid: Number(pid) };
  }
  throw new Error("no redis master found");
}

/** Signals pid and waits until it is gone (as test/chaos does). */
async function killAndWait(pid: number): Promise<void> {
  process.kill(pid, "SIGKILL");
  await waitFor(`pid ${pid} gone`, () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
}

beforeAll(async () => {
  await run("bash", [join(ROOT, "ops/ensure-prometheus.sh")], { timeout: 300_000 });
  stack = await startStackServices("prometheus", { chatNodes: 3 });
  workDir = await mkdtemp(join(tmpdir(), "shardchat-prometheus-"));
  const { stdout: config } = await run("bash", [join(ROOT, "ops/prometheus/stack-config.sh")], {
    env: {
      ...process.env,
      ...stack.vars,
      PROMETHEUS_SCRAPE_INTERVAL: "1s",
      PROMETHEUS_EVAL_INTERVAL: "1s",
      PROMETHEUS_RULES: join(RULES, "*.rules.yml"),
    },
  });
  const configFile = join(workDir, "prometheus.yml");
  await writeFile(configFile, config);
  await run("promtool", ["check", "config", configFile]);
  const port = await freePort();
  promUrl = `http://127.0.0.1:${port}`;
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(join(LOG_DIR, "stack-prometheus-prometheus.log"));
  prometheus = spawn(
    "prometheus",
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(workDir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  prometheus.stdout?.pipe(log);
  prometheus.stderr?.pipe(log);
  await waitFor("prometheus ready", async () => (await fetch(`${promUrl}/-/ready`)).ok, 60_000);
}, 600_000);

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((resolve) => prometheus?.once("exit", resolve));
    prometheus.kill("SIGTERM");
    await exited;
  }
  await stack?.stop();
  if (workDir) await rm(workDir, { recursive: true, force: true });
}, 180_000);

describe("Prometheus over the stack", () => {
  it("scrapes every service of the stack", async () => {
    const expected = ["chat-1", "chat-2", "chat-3", "gate", "gate-2", "status", "verify"];
    expect(Object.keys(stack.metricsPorts).sort()).toEqual(expected);
    const all = await waitFor(
      "every target up",
      async () => {
        const list = await targets();
        return list.length === expected.length && list.every((t) => t.health === "up") ? list : undefined;
      },
      60_000,
    );
    expect(all.map((t) => t.labels.name).sort()).toEqual(expected);
    expect(all.map((t) => t.labels.instance).sort()).toEqual(
      Object.values(stack.metricsPorts)
        .map((port) => `127.0.0.1:${port}`)
        .sort(),
    );
    expect(Object.fromEntries(all.map((t) => [t.labels.name, t.labels.job]))).toEqual({
      status: "status",
      verify: "verify",
      gate: "gate",
      "gate-2": "gate",
      "chat-1": "chat",
      "chat-2": "chat",
      "chat-3": "chat",
    });
  });

  it("sees every shard and every Redis master up, and each chat node's sessions limit", async () => {
    // Gates and chat nodes probe every instance of the shard map; all of them answer.
    const shards = await waitFor("shard probes scraped", async () => {
      const samples = await query('shardchat_dependency_up{dependency=~"mysql.*"}');
      return samples.length > 0 ? samples : undefined;
    });
    const shardNames = new Set(shards.map((s) => s.metric.dependency));
    expect(shardNames.size).toBe(stack.mysqlUrls.length);
    expect(new Set(shards.map((s) => s.metric.name))).toEqual(
      new Set(["gate", "gate-2", "chat-1", "chat-2", "chat-3"]),
    );
    expect(shards.filter((s) => s.value[1] !== "1")).toEqual([]);
    // Every service sees the Redis Cluster whole: at least its 3 masters ok, none failed.
    const ok = await query('shardchat_redis_masters{state="ok"}');
    expect(ok.map((s) => s.metric.name).sort()).toEqual(Object.keys(stack.metricsPorts).sort());
    for (const s of ok) expect(Number(s.value[1]), s.metric.name).toBeGreaterThanOrEqual(3);
    const failed = await query('shardchat_redis_masters{state="fail"} > 0');
    expect(failed).toEqual([]);
    const limits = await query('shardchat_sessions_limit{job="chat"}');
    expect(limits.map((s) => [s.metric.name, s.value[1]]).sort()).toEqual([
      ["chat-1", "100000"],
      ["chat-2", "100000"],
      ["chat-3", "100000"],
    ]);
    // None of the rules fires on a whole stack.
    expect((await api<{ alerts: Alert[] }>("alerts")).alerts).toEqual([]);
  });

  it("fires ChatNodeDown for a chat node killed with -9, and resolves it once the node is back", async () => {
    expect(await alerts("ChatNodeDown")).toEqual([]);
    await killAndWait(stack.pidOf("chat-2"));
    try {
      const fired = await firing("ChatNodeDown", 180_000);
      expect(fired.map((a) => [a.labels.name, a.labels.job, a.labels.instance, a.state])).toEqual([
        ["chat-2", "chat", `127.0.0.1:${stack.metricsPorts["chat-2"]}`, "firing"],
      ]);
    } finally {
      // Whatever happened above, the stack is whole again for the next test file.
      await stack.restart({ servicesOnly: true });
    }
    await waitFor("chat-2 scraped again", async () => (await query('up{name="chat-2"} == 1')).length === 1, 120_000);
    await waitFor("ChatNodeDown resolved", async () => (await alerts("ChatNodeDown")).length === 0, 60_000);
  }, 600_000);

  it("fires RedisMasterLost for a Redis master killed with -9, until it is back as a replica", async () => {
    expect(await alerts("RedisMasterLost")).toEqual([]);
    const victim = await aRedisMaster();
    await killAndWait(victim.pid);
    try {
      // Every service reads the cluster's verdict (the master flagged fail) at its scrapes.
      await waitFor(
        "a failed master seen by every service",
        async () => (await query('shardchat_redis_masters{state="fail"} == 1')).length === 7,
        120_000,
      );
      const fired = await firing("RedisMasterLost", 120_000);
      expect(fired.map((a) => [a.labels.severity, a.state])).toEqual([["page", "firing"]]);
    } finally {
      // Back as its successor's replica, the cluster whole for the next test file.
      await restoreKilledRedisMaster(stack.stack, victim.port);
    }
    await waitFor("RedisMasterLost resolved", async () => (await alerts("RedisMasterLost")).length === 0, 120_000);
    expect(await query('shardchat_redis_masters{state="fail"} > 0')).toEqual([]);
  }, 600_000);
});

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../src/log/logger.js";
import { type Probe, tcpProbe } from "../src/metrics/health.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { type OpsServer, startOpsServer } from "../src/metrics/ops-server.js";
import { mastersOf, redisProbe } from "../src/metrics/redis-probe.js";
import { freePort } from "./helpers/ports.js";
import { ROOT } from "./helpers/processes.js";

const run = promisify(execFile);
const PROM = join(ROOT, "ops/prometheus");

beforeAll(async () => {
  await run("bash", [join(ROOT, "ops/ensure-prometheus.sh")], { timeout: 300_000 });
}, 320_000);

describe("ops/prometheus", () => {
  it("has valid alert rules, and each alert fires as its promtool unit tests say", async () => {
    const checked = await run("promtool", ["check", "rules", join(PROM, "rules/shardchat.rules.yml")]);
    expect(checked.stdout).toContain("SUCCESS: 6 rules found");
    const rules = await readFile(join(PROM, "rules/shardchat.rules.yml"), "utf8");
    expect([...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1])).toEqual([
      "ChatNodeDown",
      "ShardUnavailable",
      "RedisMasterLost",
      "DeliveryLagHigh",
      "ErrorRateHigh",
      "SessionsNearLimit",
    ]);
    // Every alert has at least one case where it must fire (exp_alerts with labels).
    const tests = await readFile(join(PROM, "rules/shardchat.test.yml"), "utf8");
    for (const alert of ["ChatNodeDown", "ShardUnavailable", "RedisMasterLost", "DeliveryLagHigh", "ErrorRateHigh"])
      expect(tests).toMatch(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
    expect(tests).toMatch(/alertname: SessionsNearLimit\n\s+exp_alerts:\n\s+- exp_labels/);
    const tested = await run("promtool", ["test", "rules", join(PROM, "rules/shardchat.test.yml")]);
    expect(tested.stdout).toContain("SUCCESS");
  }, 60_000);

  it("has valid scrape configs, the local stack's being what stack-config.sh makes of the default ports", async () => {
    for (const file of ["prometheus.yml", "prometheus-compose.yml"]) {
      const { stdout } = await run("promtool", ["check", "config", join(PROM, file)]);
      expect(stdout, file).toContain("SUCCESS: 1 rule files found");
    }
    // Without any STACK_* of the caller's: the defaults of ops/stack/env.sh.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("STACK_")));
    const { stdout } = await run("bash", [join(PROM, "stack-config.sh")], { env });
    expect(await readFile(join(PROM, "prometheus.yml"), "utf8")).toBe(stdout);
    for (const job of ["status", "verify", "gate", "chat"]) expect(stdout).toContain(`job_name: ${job}\n`);
    expect(stdout.match(/name: chat-\d/g)).toEqual(["name: chat-1", "name: chat-2", "name: chat-3"]);
  }, 60_000);
});

describe("the rules and the dashboard", () => {
  /** Every series name a service exports: its own metrics, histograms' parts, the process metrics. */
  async function exported(): Promise<Set<string>> {
    const metrics = createMetrics("names");
    const names = new Set<string>();
    for (const m of await metrics.registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === "histogram")
        for (const part of ["_bucket", "_sum", "_count"]) names.add(`${m.name}${part}`);
    }
    return names;
  }
  // Series Prometheus makes itself, and the label values' words that look like names.
  const PROMETHEUS_OWN = new Set(["up"]);
  const seriesIn = (exprs: string[]) =>
    new Set(
      exprs.flatMap((e) =>
        [...e.matchAll(/\b((?:shardchat|process|nodejs)_\w+|up)\b(?!\s*[=~!]|["'])/g)].map((m) => m[1] as string),
      ),
    );

  it("use only series the services export", async () => {
    const names = await exported();
    const dashboard = JSON.parse(await readFile(join(ROOT, "ops/grafana/dashboards/shardchat.json"), "utf8")) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(dashboardExprs.length).toBeGreaterThan(20);
    const rules = await readFile(join(PROM, "rules/shardchat.rules.yml"), "utf8");
    const ruleExprs = [...rules.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1] as string);
    expect(ruleExprs).toHaveLength(6);
    for (const series of seriesIn([...dashboardExprs, ...ruleExprs])) {
      expect(names.has(series) || PROMETHEUS_OWN.has(series), series).toBe(true);
    }
    // What the dashboard is for: acked msg/s, delivery latency, sessions per node, errors, shard and Redis health.
    const all = dashboardExprs.join("\n");
    for (const series of [
      "shardchat_messages_in_total",
      "shardchat_delivery_seconds_bucket",
      "shardchat_connections",
      "shardchat_request_failures_total",
      "shardchat_dependency_up",
      "shardchat_redis_masters",
    ])
      expect(all).toContain(series);
  });
});

describe("the ops server's dependency metrics", () => {
  let ops: OpsServer;
  let redis: Redis;
  let deadPort: number;

  beforeAll(async () => {
    const metrics = createMetrics("probe-test");
    redis = new Redis("redis://127.0.0.1:6379", { lazyConnect: true });
    deadPort = await freePort();
    const probes: Probe[] = [
      redisProbe(redis, ({ ok, fail }) => {
        metrics.redisMasters.set({ state: "ok" }, ok);
        metrics.redisMasters.set({ state: "fail" }, fail);
      }),
      // Nothing listens there: a shard that is down.
      tcpProbe("mysql:1", `127.0.0.1:${deadPort}`),
      tcpProbe("mysql:0", "127.0.0.1:3306"),
    ];
    ops = await startOpsServer({
      host: "127.0.0.1",
      port: 0,
      metrics,
      probes,
      probeTimeoutMs: 2000,
      log: createLogger("probe-test", "silent"),
    });
  });

  afterAll(async () => {
    await ops?.close();
    redis?.disconnect();
  });

  it("reports each probe's answer at scrape time, and a single Redis as its one master", async () => {
    const text = await (await fetch(`http://127.0.0.1:${ops.port}/metrics`)).text();
    expect(text).toMatch(/^shardchat_dependency_up\{dependency="mysql:0",service="probe-test"\} 1$/m);
    expect(text).toMatch(/^shardchat_dependency_up\{dependency="mysql:1",service="probe-test"\} 0$/m);
    expect(text).toMatch(/^shardchat_dependency_up\{dependency="redis",service="probe-test"\} 1$/m);
    expect(text).toMatch(/^shardchat_redis_masters\{state="ok",service="probe-test"\} 1$/m);
    expect(text).toMatch(/^shardchat_redis_masters\{state="fail",service="probe-test"\} 0$/m);
  });

  it("counts the masters of a CLUSTER NODES answer by the cluster's verdict", () => {
    // As redis-cli -p 7002 cluster nodes printed it after 7001 was killed and 7004 took over.
    const nodes = [
      "a1 127.0.0.1:7001@17001 master,fail - 1700000000000 1700000000000 1 disconnected",
      "b2 127.0.0.1:7002@17002 myself,master - 0 1700000000000 2 connected 5461-10922",
      "c3 127.0.0.1:7003@17003 master,fail? - 1700000000000 1700000000000 3 connected 10923-16383",
      "d4 127.0.0.1:7004@17004 master - 0 1700000000000 7 connected 0-5460",
      "e5 127.0.0.1:7005@17005 slave b2 0 1700000000000 2 connected",
      "f6 127.0.0.1:7006@17006 slave,fail c3 0 1700000000000 3 connected",
      "",
    ].join("\n");
    expect(mastersOf(nodes)).toEqual({ ok: 3, fail: 1 });
  });
});

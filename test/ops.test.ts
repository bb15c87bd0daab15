import { once } from "node:events";
import { type ChatClient, GateClient, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../packages/protocol/src/wire.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../src/grpc/api.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { configEnv, dropTestDatabase, testConfig } from "./helpers/env.js";
import { freePort } from "./helpers/ports.js";
import { type ServiceProcess, spawnService, waitFor } from "./helpers/processes.js";
import { codeFromMail, startSmtpSink } from "./helpers/smtp-sink.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";

/**
 * Metrics, health and the per-connection send limit on real processes: every service serves
 * /metrics, /healthz and /readyz, and a chat node whose MySQL or Redis stops answering (a proxy
 * in front of them is cut, the shared servers keep running) reports not ready until it answers.
 */
const CONN_LIMIT = 5;

let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
let config: Config;
let gate: GateClient;
const procs: ServiceProcess[] = [];
const clients: ChatClient[] = [];
const opsPorts: Record<string, number> = {};
let mysqlProxy: TcpProxy;
let redisProxy: TcpProxy;
let gatePort: number;

async function get(name: string, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${opsPorts[name]}${path}`);
  return { status: res.status, body: await res.text() };
}

/** The value of one sample (name plus exact label set) in Prometheus text, 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function user(name: string): Promise<ChatClient> {
  const email = `${name}@example.test`;
  await gate.requestVerifyCode(email);
  const code = codeFromMail(await smtp.waitForMail(email));
  await gate.register({ user: name, email, password: `pw-${name}-secret`, code });
  const client = await openChat(await gate.login(name, `pw-${name}-secret`), "tcp");
  clients.push(client);
  return client;
}

beforeAll(async () => {
  smtp = await startSmtpSink();
  gatePort = await freePort();
  const [verifyPort, statusPort] = [await freePort(), await freePort()];
  config = testConfig({
    SMTP_URL: smtp.url,
    VERIFY_COOLDOWN_SECONDS: 1,
    VERIFY_MAX_PER_ADDR_PER_HOUR: 1000,
    GATE_PORT: gatePort,
    VERIFY_ADDR: `127.0.0.1:${verifyPort}`,
    STATUS_ADDR: `127.0.0.1:${statusPort}`,
    NODE_HEARTBEAT_INTERVAL_MS: 500,
    NODE_TTL_MS: 3000,
    CHAT_CONN_MSGS_PER_SECOND: CONN_LIMIT,
    READY_PROBE_TIMEOUT_MS: 500,
  });
  await migrate(config.MYSQL_URL);
  const mysqlUrl = new URL(config.MYSQL_URL);
  const redisUrl = new URL(config.REDIS_URL);
  mysqlProxy = await startTcpProxy(mysqlUrl.hostname, Number(mysqlUrl.port || 3306));
  redisProxy = await startTcpProxy(redisUrl.hostname, Number(redisUrl.port || 6379));
  const env = configEnv(config);
  const spawn = async (name: string, entry: string, extra: Record<string, string> = {}) => {
    opsPorts[name] = await freePort();
    procs.push(spawnService(`ops-${name}`, entry, { ...env, METRICS_PORT: String(opsPorts[name]), ...extra }));
  };
  await spawn("status", "src/status/main.ts");
  await spawn("verify", "src/verify/main.ts");
  for (const n of [1, 2]) {
    const viaProxies: Record<string, string> = {};
    if (n === 2) {
      mysqlUrl.port = String(mysqlProxy.port);
      redisUrl.port = String(redisProxy.port);
      Object.assign(viaProxies, { MYSQL_URL: mysqlUrl.toString(), REDIS_URL: redisUrl.toString() });
    }
    await spawn(`chat-${n}`, "src/chat/main.ts", {
      CHAT_NODE_ID: `chat-${n}`,
      CHAT_TCP_PORT: String(await freePort()),
      CHAT_WS_PORT: String(await freePort()),
      CHAT_GRPC_PORT: String(await freePort()),
      ...viaProxies,
    });
  }
  await spawn("gate", "src/gate/main.ts");
  gate = new GateClient(`http://127.0.0.1:${gatePort}`);
  const status = grpcClient(StatusServiceService, config.STATUS_ADDR);
  try {
    // Cold starts of five tsx processes on a busy machine: generous, as it is no assertion.
    await waitFor("2 chat nodes", async () => (await status.api.listNodes({})).nodes.length === 2, 120_000);
  } finally {
    status.close();
  }
  for (const name of Object.keys(opsPorts)) {
    await waitFor(`${name} ready`, async () => (await get(name, "/readyz").catch(() => null))?.status === 200, 120_000);
  }
}, 300_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(procs.map((p) => p.stop()));
  await mysqlProxy?.close();
  await redisProxy?.close();
  await smtp?.close();
  if (config) await dropTestDatabase(config);
});

describe("metrics and health", () => {
  it("serves /healthz and /metrics on every service", async () => {
    for (const name of ["status", "verify", "chat-1", "chat-2", "gate"]) {
      expect(await get(name, "/healthz"), name).toMatchObject({ status: 200 });
      const metrics = await get(name, "/metrics");
      expect(metrics.status, name).toBe(200);
      expect(metrics.body, name).toContain("nodejs_eventloop_lag_seconds");
    }
    // gate's public port: liveness only; what names internal addresses stays on the ops port.
    const gatePublic = (path: string) => fetch(`http://127.0.0.1:${gatePort}${path}`).then((r) => r.status);
    expect(await gatePublic("/healthz")).toBe(200);
    expect(await gatePublic("/readyz")).toBe(404);
    expect(await gatePublic("/metrics")).toBe(404);
  });

  it("counts connections, messages in and out, store and delivery latency after a chat", async () => {
    const before = await Promise.all(["chat-1", "chat-2"].map((n) => get(n, "/metrics")));
    const inBefore = before.reduce((sum, m) => sum + sample(m.body, 'shardchat_messages_in_total{service="chat"}'), 0);
    const [alice, bob] = [await user("ops_alice"), await user("ops_bob")];
    const received = once(bob, "message").then(([m]) => m as ChatMessage);
    await alice.sendText(bob.uid, "counted");
    expect((await received).text).toBe("counted");

    // The sender's node observes the delivery time when the peer node's Deliver reply is back,
    // which may be after the recipient already has the message.
    const delivered = (bodies: { body: string }[]) =>
      bodies.reduce((sum, m) => sum + sample(m.body, 'shardchat_delivery_seconds_count{service="chat"}'), 0);
    const after = await waitFor("the delivery to be counted", async () => {
      const bodies = await Promise.all(["chat-1", "chat-2"].map((n) => get(n, "/metrics")));
      return delivered(bodies) > delivered(before) ? bodies : undefined;
    });
    const total = (series: string) => after.reduce((sum, m) => sum + sample(m.body, series), 0);
    expect(total('shardchat_messages_in_total{service="chat"}')).toBe(inBefore + 1);
    expect(
      total('shardchat_messages_out_total{via="local",service="chat"}') +
        total('shardchat_messages_out_total{via="grpc",service="chat"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(total('shardchat_connections{transport="tcp",service="chat"}')).toBeGreaterThanOrEqual(2);
    expect(total('shardchat_delivery_seconds_count{service="chat"}')).toBeGreaterThanOrEqual(1);
    expect(
      after.some((m) => /^shardchat_store_seconds_count\{[^}]*op="message append"[^}]*\} [1-9]/m.test(m.body)),
    ).toBe(true);
  });

  it("answers RATE_LIMITED over CHAT_CONN_MSGS_PER_SECOND and keeps the connection", async () => {
    const [carol, dave] = [await user("ops_carol"), await user("ops_dave")];
    const results = await Promise.allSettled(
      Array.from({ length: CONN_LIMIT * 3 }, (_, i) => carol.sendText(dave.uid, `burst ${i}`)),
    );
    const limited = results.filter(
      (r) => r.status === "rejected" && r.reason instanceof AppError && r.reason.code === ErrorCode.RATE_LIMITED,
    );
    expect(limited.length).toBeGreaterThan(0);
    expect(results.filter((r) => r.status === "fulfilled").length).toBeGreaterThanOrEqual(1);
    expect(results.filter((r) => r.status === "fulfilled").length).toBeLessThanOrEqual(CONN_LIMIT * 2);
    expect(carol.closed).toBe(false);
    const metrics = await Promise.all(["chat-1", "chat-2"].map((n) => get(n, "/metrics")));
    const series = 'shardchat_rate_limited_total{limit="chat_connection",service="chat"}';
    expect(metrics.reduce((sum, m) => sum + sample(m.body, series), 0)).toBe(limited.length);
    // A later second is a new window on the same connection.
    const ok = await waitFor("a send in a new window", () => carol.sendText(dave.uid, "after the burst"));
    expect(ok.duplicate).toBe(false);
  });

  it("reports a chat node not ready while its MySQL or Redis does not answer, and ready again after", async () => {
    for (const proxy of [mysqlProxy, redisProxy]) {
      await proxy.cut();
      const down = await waitFor("not ready", async () => {
        const r = await get("chat-2", "/readyz");
        return r.status === 503 ? r : undefined;
      });
      const checks = (JSON.parse(down.body) as { checks: { name: string; ok: boolean }[] }).checks;
      const failed = checks.filter((c) => !c.ok).map((c) => c.name);
      expect(failed).toEqual([proxy === mysqlProxy ? "mysql" : "redis"]);
      expect((await get("chat-1", "/readyz")).status).toBe(200);
      expect((await get("chat-2", "/healthz")).status).toBe(200);
      await proxy.heal();
      await waitFor("ready again", async () => (await get("chat-2", "/readyz")).status === 200);
    }
  });
});

import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ChatClient, GateClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../packages/protocol/src/wire.js";
import type { Config } from "../../src/config/settings.js";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../../src/grpc/api.js";
import { migrate } from "../../src/storage/mysql/migrate.js";
import { configEnv, dropTestDatabase, testConfig } from "../helpers/env.js";
import { freePort, freePortRun } from "../helpers/ports.js";
import { ROOT, type ServiceProcess, spawnService, waitFor } from "../helpers/processes.js";
import { codeFromMail, startSmtpSink } from "../helpers/smtp-sink.js";

/**
 * Real nginx (Debian's package, installed by ops/nginx/install.sh when missing) in front of
 * shardchat, configured by ops/nginx/nginx.sh: two gates balanced over HTTP, each chat node's
 * WebSocket at /ws/<nodeId> and its raw TCP on a stream port of its own. Users register, log in
 * and chat across two chat nodes with every byte going through nginx. The services are this
 * file's own processes on the machine's MariaDB and Redis (the proxying is what is under test,
 * not the shards).
 */
const run = promisify(execFile);
const CHAT_NODES = 2;

let config: Config;
let smtp: Awaited<ReturnType<typeof startSmtpSink>>;
let nginxDir: string;
let nginxUrl: string;
let publicTcpBase: number;
const gatePorts: number[] = [];
const chatNodes: { nodeId: string; tcpPort: number; wsPort: number }[] = [];
const procs: ServiceProcess[] = [];
const clients: ChatClient[] = [];
let gate: GateClient;

/** freePort and freePortRun never hand out a port twice in one process. */
const port = freePort;
const portsFrom = freePortRun;

function nginxEnv(): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    NGINX_DIR: nginxDir,
    NGINX_HTTP_PORT: new URL(nginxUrl).port,
    NGINX_GATES: gatePorts.map((p) => `127.0.0.1:${p}`).join(" "),
    NGINX_CHAT_NODES: chatNodes
      .map((n, i) => `${n.nodeId}=127.0.0.1:${n.tcpPort}:${n.wsPort}:${publicTcpBase + i}`)
      .join(" "),
  };
}

async function register(name: string): Promise<LoginAnswer> {
  const email = `${name}@nginx.test`;
  const password = `pw-${name}-secret`;
  await gate.requestVerifyCode(email);
  const code = codeFromMail(await smtp.waitForMail(email));
  await gate.register({ user: name, email, password, code });
  return gate.login(name, password);
}

beforeAll(async () => {
  smtp = await startSmtpSink();
  const nginxPort = await port();
  nginxUrl = `http://127.0.0.1:${nginxPort}`;
  publicTcpBase = await portsFrom(CHAT_NODES);
  const [verifyPort, statusPort] = [await port(), await port()];
  config = testConfig({
    SMTP_URL: smtp.url,
    VERIFY_COOLDOWN_SECONDS: 1,
    VERIFY_MAX_PER_ADDR_PER_HOUR: 1000,
    VERIFY_ADDR: `127.0.0.1:${verifyPort}`,
    STATUS_ADDR: `127.0.0.1:${statusPort}`,
    NODE_HEARTBEAT_INTERVAL_MS: 500,
    NODE_TTL_MS: 3000,
    CHAT_PUBLIC_HOST: "127.0.0.1",
    CHAT_PUBLIC_WS_URL: `ws://127.0.0.1:${nginxPort}/ws`,
    GATE_TRUST_PROXY: ["127.0.0.1"],
  });
  await migrate(config.MYSQL_URL);
  nginxDir = mkdtempSync(join(tmpdir(), "sc-nginx-"));
  const env = configEnv(config);
  procs.push(spawnService("nginx-status", "src/status/main.ts", env));
  procs.push(spawnService("nginx-verify", "src/verify/main.ts", env));
  for (let i = 0; i < CHAT_NODES; i++) {
    const node = { nodeId: `chat-${i + 1}`, tcpPort: await port(), wsPort: await port() };
    chatNodes.push(node);
    procs.push(
      spawnService(`nginx-${node.nodeId}`, "src/chat/main.ts", {
        ...env,
        CHAT_NODE_ID: node.nodeId,
        CHAT_TCP_PORT: String(node.tcpPort),
        CHAT_WS_PORT: String(node.wsPort),
        CHAT_GRPC_PORT: String(await port()),
        CHAT_PUBLIC_TCP_PORT: String(publicTcpBase + i),
      }),
    );
  }
  for (const n of [1, 2]) {
    const gatePort = await port();
    gatePorts.push(gatePort);
    procs.push(spawnService(`nginx-gate-${n}`, "src/gate/main.ts", { ...env, GATE_PORT: String(gatePort) }));
  }
  const status = grpcClient(StatusServiceService, config.STATUS_ADDR);
  try {
    // Cold starts of six tsx processes on a busy machine: generous, as it is no assertion.
    await waitFor("chat nodes", async () => (await status.api.listNodes({})).nodes.length === CHAT_NODES, 120_000);
  } finally {
    status.close();
  }
  for (const p of gatePorts) {
    await waitFor(`gate ${p}`, async () => (await fetch(`http://127.0.0.1:${p}/healthz`)).ok, 120_000);
  }
  await run("bash", [join(ROOT, "ops/nginx/nginx.sh"), "start"], { env: nginxEnv(), timeout: 300_000 });
  await waitFor("nginx", async () => (await fetch(`${nginxUrl}/healthz`)).ok);
  gate = new GateClient(nginxUrl);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (nginxDir) await run("bash", [join(ROOT, "ops/nginx/nginx.sh"), "stop"], { env: nginxEnv() }).catch(() => {});
  await Promise.all(procs.map((p) => p.stop()));
  await smtp?.close();
  if (config) await dropTestDatabase(config);
  if (nginxDir) rmSync(nginxDir, { recursive: true, force: true });
});

describe("nginx in front of the stack", () => {
  it("balances gate over both instances and passes its request id on", async () => {
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${nginxUrl}/healthz`);
      expect(res.status).toBe(200);
      // nginx's $request_id, kept by gate (and logged by every service the request reaches).
      expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f]{32}$/);
    }
    const upstreams = new Set(
      [...readFileSync(join(nginxDir, "access.log"), "utf8").matchAll(/upstream=(\S+)/g)].map((m) => m[1]),
    );
    expect(upstreams).toEqual(new Set(gatePorts.map((p) => `127.0.0.1:${p}`)));
  });

  it("registers, logs in and chats across two chat nodes over TCP and WebSocket through nginx", async () => {
    // Users until two land on different nodes (the ring decides).
    const logins: LoginAnswer[] = [];
    for (let i = 0; logins.length < 2 && i < 20; i++) {
      const login = await register(`nx${i}_${process.pid}`);
      if (!logins.some((l) => l.nodeId === login.nodeId)) logins.push(login);
    }
    const [alice, bob] = logins as [LoginAnswer, LoginAnswer];
    expect(alice.nodeId).not.toBe(bob.nodeId);
    for (const login of [alice, bob]) {
      const index = chatNodes.findIndex((n) => n.nodeId === login.nodeId);
      // The login answer names nginx, not the node: its stream port and its /ws/<nodeId> path.
      expect(login.port).toBe(publicTcpBase + index);
      expect(login.wsUrl).toBe(`ws://127.0.0.1:${new URL(nginxUrl).port}/ws/${login.nodeId}`);
    }

    const overTcp = await openChat(alice, "tcp");
    const overWs = await openChat(bob, "ws");
    clients.push(overTcp, overWs);
    const toBob = once(overWs, "message").then(([m]) => m as ChatMessage);
    const sent = await overTcp.sendText(bob.uid, "hello through nginx (tcp → ws)");
    expect((await toBob).msgId).toBe(sent.msgId);
    const toAlice = once(overTcp, "message").then(([m]) => m as ChatMessage);
    const reply = await overWs.sendText(alice.uid, "and back (ws → tcp)");
    expect((await toAlice).msgId).toBe(reply.msgId);

    // Only nginx listens on those ports; its logs show both paths were used.
    await overTcp.close();
    await overWs.close();
    await waitFor("nginx's logs of both connections", () => {
      const access = readFileSync(join(nginxDir, "access.log"), "utf8");
      const stream = readFileSync(join(nginxDir, "stream.log"), "utf8");
      return access.includes(`"GET /ws/${bob.nodeId} HTTP/1.1" 101`) && stream.includes(`${alice.port} -> `);
    });
  });
});

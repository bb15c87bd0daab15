import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import mysql from "mysql2/promise";
import { internalTlsOf } from "../../src/grpc/tls.js";
import { freePort, freePortRun } from "./ports.js";
import { LOG_DIR, ROOT, waitFor } from "./processes.js";
import { startSmtpSink } from "./smtp-sink.js";

const run = promisify(execFile);

/** The stack's ports and names, as ops/stack/env.sh defines them (one source of truth). */
export interface StackEnv {
  mysqlPorts: number[];
  redisPorts: number[];
  redisNodes: string;
  dir: string;
  logDir: string;
  runDir: string;
  /** The services' INTERNAL_AUTH_TOKEN (a direct gRPC call to them needs it). */
  internalAuthToken: string;
  /** The stack's mutual TLS: its CA, and the tools' certificate and key (for direct gRPC calls). */
  internalTls: { INTERNAL_TLS_CA: string; INTERNAL_TLS_CERT: string; INTERNAL_TLS_KEY: string };
  /** The gates' S3 server (moto_server, any key pair) and bucket. */
  s3: { endpoint: string; bucket: string };
}

/** How a tool calls the stack's services over gRPC: the token and the tools' certificate. */
export function stackGrpcOptions(stack: StackEnv): { authToken: string; tls: ReturnType<typeof internalTlsOf> } {
  return { authToken: stack.internalAuthToken, tls: internalTlsOf(stack.internalTls) };
}

export async function stackEnv(vars: Record<string, string> = {}): Promise<StackEnv> {
  const script = `source ${JSON.stringify(join(ROOT, "ops/stack/env.sh"))}
echo "$(stack_mysql_ports)"; echo "$STACK_REDIS_PORTS"; echo "$(stack_redis_nodes)"
echo "$STACK_DIR"; echo "$STACK_LOG_DIR"; echo "$STACK_RUN_DIR"; echo "$(stack_internal_auth_token)"
echo "$(stack_internal_tls_dir tools)"; echo "$STACK_S3_PORT"; echo "$STACK_S3_BUCKET"`;
  const { stdout } = await run("bash", ["-c", script], { env: { ...process.env, ...vars } });
  const [
    mysqlPorts = "",
    redis = "",
    nodes = "",
    dir = "",
    logDir = "",
    runDir = "",
    internalAuthToken = "",
    tls = "",
    s3Port = "",
    s3Bucket = "",
  ] = stdout.trim().split("\n");
  const ports = (s: string) => s.trim().split(/\s+/).map(Number);
  return {
    mysqlPorts: ports(mysqlPorts),
    redisPorts: ports(redis),
    redisNodes: nodes,
    dir,
    logDir,
    runDir,
    internalAuthToken,
    internalTls: {
      INTERNAL_TLS_CA: join(tls, "ca.pem"),
      INTERNAL_TLS_CERT: join(tls, "tools.pem"),
      INTERNAL_TLS_KEY: join(tls, "tools.key"),
    },
    s3: { endpoint: `http://127.0.0.1:${s3Port}`, bucket: s3Bucket },
  };
}

/** A client of the stack's S3 server (moto accepts any key pair). */
export function stackS3Client(stack: StackEnv): S3Client {
  return new S3Client({
    region: "us-east-1",
    endpoint: stack.s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: "stack", secretAccessKey: "stack" },
  });
}

/** Empties and removes a bucket of the stack's S3 server (one test run's). */
async function dropBucket(stack: StackEnv): Promise<void> {
  const s3 = stackS3Client(stack);
  try {
    for (;;) {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: stack.s3.bucket }));
      const keys = (listed.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: stack.s3.bucket, Delete: { Objects: keys } }));
    }
    await s3.send(new DeleteBucketCommand({ Bucket: stack.s3.bucket }));
  } finally {
    s3.destroy();
  }
}

/** Starts the stack's databases and Redis Cluster (ops/stack/up.sh --infra), reusing what runs. */
export async function stackInfraUp(): Promise<StackEnv> {
  await run("bash", [join(ROOT, "ops/stack/up.sh"), "--infra"], { timeout: 240_000 });
  return stackEnv();
}

export type SmtpSink = Awaited<ReturnType<typeof startSmtpSink>>;

/** A whole stack's services started by ops/stack/up.sh for one test file. */
export interface StackServices {
  /** The STACK_* variables this run was started with (pass them to ops scripts). */
  vars: Record<string, string>;
  stack: StackEnv;
  gateUrl: string;
  /** The second gate, on the same bucket, Redis and databases. */
  gate2Url: string;
  statusAddr: string;
  /** This run's database on every MariaDB instance, the control instance first. */
  mysqlUrls: string[];
  redisPrefix: string;
  smtp: SmtpSink;
  chatNodes: { nodeId: string; tcpPort: number; wsPort: number; grpcPort: number; metricsPort: number }[];
  /** Each service's ops server port (/metrics, /healthz, /readyz), by name ("status", "gate-2", "chat-1"). */
  metricsPorts: Record<string, number>;
  /** The pid of a service the script started ("status", "gate", "chat-2", ...). */
  pidOf(name: string): number;
  /**
   * Runs ops/stack/up.sh again with this run's settings: starts what died. `servicesOnly`
   * (up.sh --services) leaves the databases and Redis alone, as fault injection needs.
   */
  restart(options?: { servicesOnly?: boolean }): Promise<void>;
  /** Stops the services (ops/stack/down.sh --services), drops this run's databases and bucket, closes SMTP. */
  stop(): Promise<void>;
}

/**
 * Runs `ops/stack/up.sh` (the same script people use) for one test file: its own service ports,
 * run and log folders, database name and Redis key prefix, on the shared databases and Redis
 * Cluster, with verify mailing a local SMTP server. `env` adds settings for every service.
 */
export async function startStackServices(
  name: string,
  options: { chatNodes?: number; env?: Record<string, string>; startTimeoutMs?: number } = {},
): Promise<StackServices> {
  const chatNodes = options.chatNodes ?? 3;
  const tag = `${name}-${process.pid}`;
  const ports = async (n: number) => {
    const list: number[] = [];
    while (list.length < n) list.push(await freePort());
    return list;
  };
  // Chat node i takes base + i: whole runs, kept clear of every other port handed out.
  const base = () => freePortRun(chatNodes + 1);
  const [gatePort = 0, verifyPort = 0, statusPort = 0, gate2Port = 0] = await ports(4);
  const vars: Record<string, string> = {
    STACK_RUN_DIR: join(ROOT, ".stack", "tests", tag, "run"),
    STACK_LOG_DIR: join(LOG_DIR, `stack-${name}`),
    STACK_MYSQL_DB: `sc_stack_${name.replace(/\W/g, "_")}_${process.pid}`,
    STACK_REDIS_PREFIX: `sc-stack-${tag}:`,
    STACK_GATE_PORT: String(gatePort),
    STACK_GATE2_PORT: String(gate2Port),
    // This run's bucket on the shared S3 server (bucket names: lower case, digits, hyphens).
    STACK_S3_BUCKET: `sc-stack-${name.toLowerCase().replace(/[^a-z0-9]/g, "-")}-${process.pid}`.slice(0, 63),
    STACK_VERIFY_PORT: String(verifyPort),
    STACK_STATUS_PORT: String(statusPort),
    STACK_CHAT_NODES: String(chatNodes),
    STACK_CHAT_TCP_BASE: String(await base()),
    STACK_CHAT_WS_BASE: String(await base()),
    STACK_CHAT_GRPC_BASE: String(await base()),
    // The ops servers (/metrics): status, verify, gate, gate-2 on base + 0..3; chat-i on its own base.
    STACK_METRICS_BASE: String(await freePortRun(4)),
    STACK_CHAT_METRICS_BASE: String(await base()),
  };
  const smtp = await startSmtpSink();
  const serviceEnv = {
    SMTP_URL: smtp.url,
    VERIFY_COOLDOWN_SECONDS: "1",
    VERIFY_MAX_PER_ADDR_PER_HOUR: "100000",
    // Every test client comes from 127.0.0.1, and the scaling tests reconnect whole crowds.
    LOGIN_MAX_PER_ADDR_PER_MINUTE: "100000",
    NODE_HEARTBEAT_INTERVAL_MS: "500",
    NODE_TTL_MS: "3000",
    ...options.env,
  };
  const env = { ...process.env, ...vars, ...serviceEnv };
  const gateUrl = `http://127.0.0.1:${gatePort}`;
  const gate2Url = `http://127.0.0.1:${gate2Port}`;
  // A start that fails anywhere (up.sh, or a gate that never answers) stops what it started:
  // the caller gets no handle to stop it with, and services left running hold ports and CPU
  // for every later test and bench on the machine. up.sh's deadline stays inside the callers'
  // 300 s beforeAll, so a slow start fails here and cleans up rather than being abandoned.
  try {
    await run("bash", [join(ROOT, "ops/stack/up.sh")], { env, timeout: options.startTimeoutMs ?? 240_000 });
    await waitFor("gate /healthz", async () => (await fetch(`${gateUrl}/healthz`)).ok);
    await waitFor("gate-2 /healthz", async () => (await fetch(`${gate2Url}/healthz`)).ok);
  } catch (err) {
    await run("bash", [join(ROOT, "ops/stack/down.sh"), "--services"], { env, timeout: 120_000 }).catch(
      () => undefined,
    );
    await smtp.close();
    throw err;
  }
  const stack = await stackEnv(vars);
  const mysqlUrls = stack.mysqlPorts.map((port) => `mysql://root@127.0.0.1:${port}/${vars.STACK_MYSQL_DB}`);
  const pidOf = (service: string) => Number(readFileSync(join(stack.runDir, `${service}.pid`), "utf8").trim());
  return {
    vars,
    stack,
    gateUrl,
    gate2Url,
    statusAddr: `127.0.0.1:${statusPort}`,
    mysqlUrls,
    redisPrefix: vars.STACK_REDIS_PREFIX as string,
    smtp,
    chatNodes: Array.from({ length: chatNodes }, (_, i) => ({
      nodeId: `chat-${i + 1}`,
      tcpPort: Number(vars.STACK_CHAT_TCP_BASE) + i,
      wsPort: Number(vars.STACK_CHAT_WS_BASE) + i,
      grpcPort: Number(vars.STACK_CHAT_GRPC_BASE) + i,
      metricsPort: Number(vars.STACK_CHAT_METRICS_BASE) + i,
    })),
    metricsPorts: Object.fromEntries([
      ...["status", "verify", "gate", "gate-2"].map((service, i) => [service, Number(vars.STACK_METRICS_BASE) + i]),
      ...Array.from({ length: chatNodes }, (_, i) => [`chat-${i + 1}`, Number(vars.STACK_CHAT_METRICS_BASE) + i]),
    ]),
    pidOf,
    async restart(restartOptions = {}) {
      const args = [join(ROOT, "ops/stack/up.sh"), ...(restartOptions.servicesOnly ? ["--services"] : [])];
      await run("bash", args, { env, timeout: 300_000 });
    },
    async stop() {
      await run("bash", [join(ROOT, "ops/stack/down.sh"), "--services"], { env, timeout: 120_000 }).catch(
        (err: unknown) => console.error("stack services did not stop cleanly", err),
      );
      await smtp.close();
      await dropBucket(stack).catch((err: unknown) => console.error("the run's bucket was not removed", err));
      await Promise.all(
        mysqlUrls.map(async (url) => {
          const db = new URL(url).pathname.slice(1);
          const conn = await mysql.createConnection({ uri: url.replace(/\/[^/]*$/, "/") });
          await conn.query(`DROP DATABASE IF EXISTS \`${db}\``).finally(() => conn.end());
        }),
      );
    },
  };
}

/**
 * Waits until every replica has every write its master had when this was called. (WAIT on a
 * new connection proves nothing: it waits for that connection's own writes, and it made none.)
 */
export async function replicasCaughtUp(redisPorts: number[], timeoutMs = 10_000): Promise<void> {
  const info = async (port: number) => (await run("redis-cli", ["-p", String(port), "info", "replication"])).stdout;
  for (const port of redisPorts) {
    const text = await info(port);
    if (!text.includes("role:master")) continue;
    const target = Number(/master_repl_offset:(\d+)/.exec(text)?.[1] ?? 0);
    await waitFor(
      `the replicas of redis ${port} at offset ${target}`,
      async () => {
        const offsets = [...(await info(port)).matchAll(/^slave\d+:.*offset=(\d+)/gm)].map((m) => Number(m[1]));
        return offsets.length > 0 && offsets.every((o) => o >= target);
      },
      timeoutMs,
    );
  }
}

async function redisCli(port: number, ...args: string[]): Promise<string> {
  return (await run("redis-cli", ["-p", String(port), ...args]).catch(() => ({ stdout: "" }))).stdout;
}

/**
 * Waits until the cluster has failed over away from a killed master: the master flagged FAIL
 * (not PFAIL, "fail?", one node's suspicion) and the cluster ok, its replica holding its slots.
 */
export async function failedOverAway(stack: StackEnv, port: number): Promise<void> {
  const other = stack.redisPorts.find((p) => p !== port) as number;
  await waitFor(
    `failover away from redis ${port}`,
    async () =>
      (await redisCli(other, "cluster", "info")).includes("cluster_state:ok") &&
      new RegExp(`:${port}@\\d+ \\S*\\bfail(?!\\?)`).test(await redisCli(other, "cluster", "nodes")),
    60_000,
  );
}

/**
 * Brings a Redis master that was killed back, as an operator would: only once its replica has
 * taken over (a master started again before that comes back empty, there is no persistence, and
 * its replica would copy the emptiness), then ops/stack/up.sh --infra starts it with its
 * nodes.conf and it rejoins as the new master's replica. On a busy machine it may stay a master
 * without slots; a second up.sh makes it a replica (reattach_empty_masters), as an operator would.
 */
export async function restoreKilledRedisMaster(stack: StackEnv, port: number): Promise<void> {
  // Restarting it before its replica took over would bring it back as the master it still is,
  // and it would never rejoin as a replica.
  await failedOverAway(stack, port);
  const rejoined = async () => {
    if (!(await redisCli(port, "role")).startsWith("slave")) return false;
    for (const p of stack.redisPorts)
      if (!(await redisCli(p, "cluster", "info")).includes("cluster_state:ok")) return false;
    return true;
  };
  await stackInfraUp();
  if (await waitFor(`redis ${port} back as a replica`, rejoined, 30_000).catch(() => false)) return;
  await stackInfraUp();
  await waitFor(`redis ${port} back as a replica, cluster ok`, rejoined, 60_000);
}

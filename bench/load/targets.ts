/**
 * The systems a load run can drive, each started by us and stopped after: shardchat in one
 * process (src/main.ts, several chat nodes inside, on MySQL + Redis, or as `npm start` runs it
 * with no settings: SQLite and in-memory routing), shardchat as the multi-shard stack
 * (ops/stack/up.sh: separate processes on 3 MariaDB shards and a Redis Cluster), and the two
 * references (bench/references/). Each hands out tickets (users ready to connect) and pairs.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStorageAdapters } from "../../src/compose.js";
import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/settings.js";
import { okOrThrow } from "../../src/errors.js";
import { hashPassword } from "../../src/gate/password.js";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../../src/grpc/api.js";
import { internalTlsOf } from "../../src/grpc/tls.js";
import type { Uid } from "../../src/ids/identifiers.js";
import { Snowflake } from "../../src/ids/snowflake.js";
import { createLogger } from "../../src/log/logger.js";
import { canListen, freePort, freePortRun } from "../../test/helpers/ports.js";
import type { StackServices } from "../../test/helpers/stack.js";
import type { Ticket } from "./drivers.js";
import { type HostPort, hostPortOf, type MysqlAt, mysqlAtOf, processCpuMs, type SystemProcess } from "./usage.js";

export const ROOT = join(import.meta.dirname, "../..");
/** Output of the processes a load run starts (not committed). */
const LOG_DIR = join(ROOT, ".bench-logs");

export type ShardchatTransport = "tcp" | "ws" | "ws-json";

export interface Target {
  name: string;
  /** Processes holding client connections (their RSS is the memory per connection). */
  connectionPids(): number[];
  /** `count` users ready to connect, spread over the nodes. */
  tickets(count: number): Promise<Ticket[]>;
  /** `count` pairs: across two nodes where the system routes between nodes, on one where it cannot. */
  pairs(count: number): Promise<[Ticket, Ticket][]>;
  /** shardchat only: gate's URL and users with a known password, for the login storm. */
  gate?: { url: string; users(count: number): Promise<{ user: string; password: string; uid: string }[]> };
  /**
   * Every process of the system itself (services, chat nodes, reference servers), for CPU
   * accounting; the MariaDB and Redis processes are found from `stores`. Default: connectionPids.
   */
  processes?(): SystemProcess[];
  /** The Redis nodes and MariaDB instances the system uses (commands and statements are read there). */
  stores?: { redis: HostPort[]; mysql: MysqlAt[] };
  stop(): Promise<void>;
}

/** Pairs whose members sit on different nodes whenever there are several. */
export function pairAcrossNodes(tickets: Ticket[]): [Ticket, Ticket][] {
  const byNode = new Map<string, Ticket[]>();
  for (const t of tickets) byNode.set(t.node, [...(byNode.get(t.node) ?? []), t]);
  const queues = [...byNode.values()];
  const pairs: [Ticket, Ticket][] = [];
  for (let i = 0; ; i++) {
    // Take from the two fullest nodes, so the leftovers stay spread.
    queues.sort((a, b) => b.length - a.length);
    const [x, y] = queues;
    if (!x?.length) break;
    const a = x.pop() as Ticket;
    const b = y?.length ? y.pop() : x.pop();
    if (!b) break;
    pairs.push([a, b]);
    if (i > tickets.length) break;
  }
  return pairs;
}

/**
 * A load run measures capacity, not the abuse limits: the ones a load from one address would
 * trip are lifted for its users.
 */
export const LOAD_LIMITS_OFF = {
  CHAT_USER_MSGS_PER_SECOND: "1000000",
  CHAT_CONN_MSGS_PER_SECOND: "1000000",
  LOGIN_MAX_PER_ADDR_PER_MINUTE: "1000000",
  LOGIN_MAX_PER_SECOND: "1000000",
  CHAT_MAX_CONNECTIONS_PER_ADDR: "0",
  // The group runs measure fan-out: the load tool puts 2,000 users in a group by fiat.
  GROUP_JOIN_CONSENT: "none",
  GROUP_INVITES_PER_DAY: "1000000",
};

/**
 * `count` pairs across nodes: the ring places users where it will, so more users are made than
 * needed and the pairs that share a node are the last to be taken.
 */
async function crossNodePairs(count: number, tickets: (n: number) => Promise<Ticket[]>): Promise<[Ticket, Ticket][]> {
  const pairs = pairAcrossNodes(await tickets(3 * count));
  pairs.sort((p, q) => Number(p[0].node === p[1].node) - Number(q[0].node === q[1].node));
  return pairs.slice(0, count);
}

/** Children still running: killed when this process exits, however it exits. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Spawns `node --import tsx <entry>` and resolves once its output contains `readyLine`. */
export function spawnNode(
  name: string,
  entry: string,
  env: Record<string, string>,
  readyLine: string,
  nodeArgs: string[] = [],
  timeoutMs = 90_000,
): Promise<ChildProcess> {
  mkdirSync(LOG_DIR, { recursive: true });
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", join(ROOT, entry)], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  child.once("exit", () => live.delete(child));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start within ${timeoutMs} ms:\n${out.slice(-2000)}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      if (out.length < 100_000) out += chunk.toString();
      if (out.includes(readyLine)) {
        clearTimeout(timer);
        child.stdout?.off("data", onData);
        child.stderr?.off("data", onData);
        // Keep draining, or a chatty child blocks on a full pipe: into its log file.
        const logFile = createWriteStream(join(LOG_DIR, `${name.replace(/\W+/g, "-")}-${child.pid}.log`));
        logFile.write(out);
        child.stdout?.pipe(logFile, { end: false });
        child.stderr?.pipe(logFile, { end: false });
        child.once("exit", () => logFile.end());
        resolve(child);
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code}) before it was ready:\n${out.slice(-2000)}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

/** RSS of a process in bytes (Linux). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

/** CPU time (user + system) a process has used so far, in ms (Linux; 0 once it is gone). */
export function cpuMsOf(pid: number): number {
  return processCpuMs(pid) ?? 0;
}

export const LOAD_PASSWORD = "load-test-password";

/**
 * Users made straight in storage (so a run measures chat, not registration) with one known
 * password, and tokens issued by status for the node the ring gives each.
 */
export class ShardchatUsers {
  private made = 0;
  private hash: Promise<string> | undefined;
  private readonly ids = new Snowflake({ workerId: 1000 + (process.pid % 20) });
  private readonly tag = Date.now().toString(36);

  constructor(
    private readonly config: Config,
    private readonly statusAddr: string,
    private readonly transport: ShardchatTransport,
  ) {}

  private async create(count: number): Promise<{ uid: Uid; name: string }[]> {
    this.hash ??= hashPassword(LOAD_PASSWORD);
    const passwordHash = await this.hash;
    const storage = await createStorageAdapters(this.config, createLogger("load", "warn"));
    try {
      const made: { uid: Uid; name: string }[] = [];
      for (let i = 0; i < count; i++) {
        const n = this.made++;
        made.push({ uid: this.ids.next(), name: `ld_${this.tag}_${n}` });
      }
      await inBatches(made, 32, (u) =>
        storage.users.create({
          uid: u.uid,
          name: u.name,
          email: `${u.name}@load.test`,
          passwordHash,
          createdAt: Date.now(),
        }),
      );
      return made;
    } finally {
      await storage.close();
    }
  }

  async logins(count: number): Promise<{ user: string; password: string; uid: string }[]> {
    return (await this.create(count)).map((u) => ({ user: u.name, password: LOAD_PASSWORD, uid: u.uid }));
  }

  async tickets(count: number): Promise<Ticket[]> {
    const users = await this.create(count);
    const status = grpcClient(StatusServiceService, this.statusAddr, {
      authToken: this.config.INTERNAL_AUTH_TOKEN,
      tls: internalTlsOf(this.config),
    });
    try {
      return await inBatches(users, 32, async (u): Promise<Ticket> => {
        const { node } = okOrThrow(await status.api.getChatNode({ uid: u.uid }));
        const { token } = okOrThrow(await status.api.issueToken({ uid: u.uid }));
        if (!node) throw new Error("no chat node");
        return {
          kind: "shardchat",
          id: u.uid,
          token,
          transport: this.transport,
          host: node.host,
          port: node.tcpPort,
          wsUrl: node.wsUrl,
          node: node.nodeId,
        };
      });
    } finally {
      status.close();
    }
  }
}

export async function inBatches<T, R>(items: T[], size: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(f))));
  return out;
}

/**
 * shardchat in one process (src/main.ts) on MySQL and Redis with `chatNodes` chat nodes:
 * the embedded topology, with storage and routing that other processes (we) can reach.
 * (`startEmbeddedSqlite` is the same process on npm start's defaults: SQLite, in-memory routing.)
 */
export async function startEmbedded(
  options: {
    chatNodes?: number;
    transport?: ShardchatTransport;
    env?: Record<string, string>;
    /** Extra node flags for the server process (e.g. --cpu-prof). */
    nodeArgs?: string[];
  } = {},
): Promise<Target> {
  const chatNodes = options.chatNodes ?? 3;
  const tag = `${Date.now().toString(36)}${process.pid}`;
  const base = loadConfig({ ...process.env, LOG_LEVEL: "warn" });
  const mysqlUrl = new URL(base.MYSQL_URL);
  mysqlUrl.pathname = `/sc_load_${tag}`;
  const statusPort = await freePort();
  const gatePort = await freePort();
  const env: Record<string, string> = {
    LOG_LEVEL: "warn",
    STORAGE_BACKEND: "mysql",
    ROUTING_BACKEND: "redis",
    MYSQL_URL: mysqlUrl.toString(),
    MYSQL_SHARDS: "",
    REDIS_CLUSTER_NODES: "",
    REDIS_KEY_PREFIX: `sc-load-${tag}:`,
    STACK_CHAT_NODES: String(chatNodes),
    GATE_PORT: String(gatePort),
    STATUS_ADDR: `127.0.0.1:${statusPort}`,
    VERIFY_ADDR: `127.0.0.1:${await freePort()}`,
    CHAT_TCP_PORT: String(await freePortRun(chatNodes)),
    CHAT_WS_PORT: String(await freePortRun(chatNodes)),
    CHAT_GRPC_PORT: String(await freePortRun(chatNodes)),
    ...LOAD_LIMITS_OFF,
    ...options.env,
  };
  const child = await spawnNode("shardchat (embedded)", "src/main.ts", env, "shardchat is running", options.nodeArgs);
  const config = loadConfig({ ...process.env, ...env });
  const users = new ShardchatUsers(config, env.STATUS_ADDR as string, options.transport ?? "tcp");
  return {
    name: `shardchat embedded (one process, ${chatNodes} chat nodes, MySQL + Redis)`,
    connectionPids: () => [child.pid as number],
    processes: () => [{ role: `shardchat (gate, verify, status, ${chatNodes} chat nodes)`, pid: child.pid as number }],
    stores: { redis: [hostPortOf(config.REDIS_URL, 6379)], mysql: [mysqlAtOf(config.MYSQL_URL)] },
    tickets: (n) => users.tickets(n),
    pairs: async (n) => crossNodePairs(n, (k) => users.tickets(k)),
    gate: { url: `http://127.0.0.1:${gatePort}`, users: (n) => users.logins(n) },
    async stop() {
      await stopChild(child);
      const mysql = (await import("mysql2/promise")).default;
      const url = new URL(config.MYSQL_URL);
      url.pathname = "/";
      const conn = await mysql.createConnection({ uri: url.toString() });
      await conn.query(`DROP DATABASE IF EXISTS \`sc_load_${tag}\``).finally(() => conn.end());
    },
  };
}

/**
 * shardchat as `npm start` runs it with no settings (the embedded default): one process, one chat
 * node, users and messages in a SQLite file under DATA_DIR (a fresh temporary folder here, removed
 * at stop), routing state in the process's memory. Only the ports are ours, and the send limits
 * are lifted as for every load run. Users are made straight in the same SQLite file (WAL lets
 * another process write it) and get their tokens from status over gRPC, as on the other targets.
 */
export async function startEmbeddedSqlite(
  options: { transport?: ShardchatTransport; env?: Record<string, string>; nodeArgs?: string[] } = {},
): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), "shardchat-bench-sqlite-"));
  const statusPort = await freePort();
  const gatePort = await freePort();
  const env: Record<string, string> = {
    LOG_LEVEL: "warn",
    STORAGE_BACKEND: "sqlite",
    ROUTING_BACKEND: "memory",
    DATA_DIR: dataDir,
    // npm start's default: one chat node with in-memory routing.
    STACK_CHAT_NODES: "0",
    GATE_PORT: String(gatePort),
    STATUS_ADDR: `127.0.0.1:${statusPort}`,
    VERIFY_ADDR: `127.0.0.1:${await freePort()}`,
    CHAT_TCP_PORT: String(await freePort()),
    CHAT_WS_PORT: String(await freePort()),
    CHAT_GRPC_PORT: String(await freePort()),
    ...LOAD_LIMITS_OFF,
    ...options.env,
  };
  let child: ChildProcess;
  try {
    child = await spawnNode(
      "shardchat (embedded sqlite)",
      "src/main.ts",
      env,
      "shardchat is running",
      options.nodeArgs,
    );
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const config = loadConfig({ ...process.env, ...env });
  const users = new ShardchatUsers(config, env.STATUS_ADDR as string, options.transport ?? "tcp");
  return {
    name: "shardchat embedded, as npm start runs it (one process, 1 chat node, SQLite, in-memory routing)",
    connectionPids: () => [child.pid as number],
    processes: () => [{ role: "shardchat (gate, verify, status, 1 chat node)", pid: child.pid as number }],
    stores: { redis: [], mysql: [] },
    tickets: (n) => users.tickets(n),
    // One chat node: every pair is on it.
    pairs: async (n) => crossNodePairs(n, (k) => users.tickets(k)),
    gate: { url: `http://127.0.0.1:${gatePort}`, users: (n) => users.logins(n) },
    async stop() {
      await stopChild(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The multi-shard stack through ops/stack/up.sh (the script people use): status, verify, gate
 * and `chatNodes` chat nodes as separate processes on 3 MariaDB shards and the Redis Cluster.
 */
/**
 * The settings a tool beside a running stack uses to reach it as its services do: its shards,
 * its internal token and TLS (to make users in its database and ask status for tokens).
 */
export function stackToolConfig(stack: StackServices): Config {
  return loadConfig({
    ...process.env,
    LOG_LEVEL: "warn",
    STORAGE_BACKEND: "mysql",
    MYSQL_URL: stack.mysqlUrls[0],
    MYSQL_SHARDS: stack.mysqlUrls.join(","),
    INTERNAL_AUTH_TOKEN: stack.stack.internalAuthToken,
    ...stack.stack.internalTls,
  });
}

export async function startStack(
  options: { chatNodes?: number; transport?: ShardchatTransport; env?: Record<string, string> } = {},
): Promise<Target> {
  // A private Redis Cluster (6 nodes on ports of our own): the shared one on 7001-7006 is where
  // the fault-injection tests kill masters, which a measurement must not run into.
  const redisBase = await freeRedisBase();
  const redisPorts = Array.from({ length: 6 }, (_, i) => redisBase + i);
  // The test helper already knows how to run up.sh on private ports, database and prefix.
  const { startStackServices } = await import("../../test/helpers/stack.js");
  const stack = await startStackServices("bench", {
    chatNodes: options.chatNodes ?? 3,
    env: {
      STACK_REDIS_PORTS: redisPorts.join(" "),
      REDIS_CLUSTER_NODES: redisPorts.map((p) => `127.0.0.1:${p}`).join(","),
      LOG_LEVEL: "warn",
      NODE_HEARTBEAT_INTERVAL_MS: "2000",
      NODE_TTL_MS: "6000",
      ...LOAD_LIMITS_OFF,
      ...options.env,
    },
  }).catch(async (err: unknown) => {
    await stopRedisNodes(redisPorts);
    throw err;
  });
  const users = new ShardchatUsers(stackToolConfig(stack), stack.statusAddr, options.transport ?? "tcp");
  return {
    name: `shardchat stack (${stack.chatNodes.length} chat-node processes, ${stack.mysqlUrls.length} MariaDB shards, Redis Cluster)`,
    connectionPids: () => stack.chatNodes.map((n) => stack.pidOf(n.nodeId)),
    processes: () =>
      [...stack.chatNodes.map((n) => n.nodeId), "gate", "status", "verify"].map((role) => ({
        role,
        pid: stack.pidOf(role),
      })),
    // The MariaDB instances are ops/stack/env.sh's (STACK_MYSQL_MAIN_PORT, STACK_MYSQL_EXTRA_PORTS);
    // Redis is this run's private cluster, given to up.sh as STACK_REDIS_PORTS (the meter adds any
    // further member the cluster knows).
    stores: {
      redis: redisPorts.map((port) => ({ host: "127.0.0.1", port })),
      mysql: stack.mysqlUrls.map(mysqlAtOf),
    },
    tickets: (n) => users.tickets(n),
    pairs: async (n) => crossNodePairs(n, (k) => users.tickets(k)),
    gate: { url: stack.gateUrl, users: (n) => users.logins(n) },
    async stop() {
      await stack.stop();
      await stopRedisNodes(redisPorts);
    },
  };
}

/** Six consecutive free ports whose cluster bus ports (+10000) are free too. */
async function freeRedisBase(): Promise<number> {
  for (let base = 7400; base < 7900; base += 10) {
    let free = true;
    for (let i = 0; free && i < 6; i++) free = (await canListen(base + i)) && (await canListen(base + i + 10_000));
    if (free) return base;
  }
  throw new Error("no free ports for a private Redis Cluster in 7400-7900");
}

/** Shuts down the private cluster's nodes (the ones we started, by port) and forgets their state. */
async function stopRedisNodes(ports: number[]): Promise<void> {
  await Promise.all(
    ports.map(
      (port) =>
        new Promise<void>((resolve) => {
          execFile("redis-cli", ["-p", String(port), "shutdown", "nosave"], () => resolve());
        }),
    ),
  );
  for (const port of ports) rmSync(join(ROOT, ".stack", `redis-${port}`), { recursive: true, force: true });
}

/** A reference: `processes` copies of a tiny server, each printing "listening <port>". */
async function startReference(
  kind: "ws-relay" | "socketio",
  processes: number,
  env: Record<string, string> = {},
): Promise<Target> {
  const entry = kind === "ws-relay" ? "bench/references/ws-relay.ts" : "bench/references/socketio-server.ts";
  const children: { child: ChildProcess; url: string }[] = [];
  try {
    for (let i = 0; i < processes; i++) {
      const port = await freePort();
      const child = await spawnNode(`${kind} ${i}`, entry, { PORT: String(port), ...env }, "listening");
      children.push({ child, url: `ws://127.0.0.1:${port}` });
    }
  } catch (err) {
    await Promise.all(children.map((c) => stopChild(c.child)));
    throw err;
  }
  let next = 0;
  const tickets = async (count: number): Promise<Ticket[]> =>
    Array.from({ length: count }, (_, i) => {
      const at = i % processes;
      const url = children[at]?.url as string;
      return { kind, id: `${kind}-${process.pid}-${next++}`, url, node: String(at) };
    });
  return {
    name:
      kind === "ws-relay"
        ? `plain ws relay (${processes} processes, no storage, peers on one process)`
        : `Socket.IO + @socket.io/redis-adapter (${processes} processes, Redis pub/sub)`,
    connectionPids: () => children.map((c) => c.child.pid as number),
    processes: () => children.map((c, i) => ({ role: `${kind} ${i}`, pid: c.child.pid as number })),
    stores: { redis: env.REDIS_URL ? [hostPortOf(env.REDIS_URL, 6379)] : [], mysql: [] },
    tickets,
    async pairs(count) {
      // The relay cannot route between processes: both members of a pair sit on one of them.
      if (kind === "ws-relay")
        return Array.from({ length: count }, (_, i): [Ticket, Ticket] => {
          const url = children[i % processes]?.url as string;
          const node = String(i % processes);
          const id = () => `${kind}-${process.pid}-${next++}`;
          return [
            { kind, id: id(), url, node },
            { kind, id: id(), url, node },
          ];
        });
      return crossNodePairs(count, tickets);
    },
    stop: async () => {
      await Promise.all(children.map((c) => stopChild(c.child)));
    },
  };
}

export const startWsRelay = (processes: number) => startReference("ws-relay", processes);
export const startSocketIo = (processes: number, redisUrl = "redis://127.0.0.1:6379") =>
  startReference("socketio", processes, { REDIS_URL: redisUrl });

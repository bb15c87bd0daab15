import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { GateClient } from "@shardchat/sdk";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../../src/grpc/api.js";
import { freePortRun } from "../helpers/ports.js";
import { waitFor } from "../helpers/processes.js";
import { codeFromMail } from "../helpers/smtp-sink.js";
import {
  restoreKilledRedisMaster,
  type StackServices,
  stackGrpcOptions,
  startStackServices,
} from "../helpers/stack.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.js";
import { type ChatUser, SteadyChat } from "./steady-chat.js";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ChaosOptions {
  /** Pairs of users chatting (both directions). */
  pairs: number;
  /** Messages per second per sender. */
  ratePerSender: number;
  /** How long a MySQL shard is stopped, and how long other held faults (delay, service stops) last. */
  mysqlStopMs: number;
  holdMs: number;
  /** Added network delay on one chat node (each direction). */
  delayMs: number;
  /** Steady load before each fault. */
  warmupMs: number;
  /** Only these faults (by name); all when absent. */
  only?: string[];
  log?: (line: string) => void;
}

export interface FaultResult {
  fault: string;
  description: string;
  /** How long the fault was held before it was healed (0: the system heals itself). */
  heldMs: number;
  /** From the end of the fault (or the kill) until every sender's new sends are acked again and the fault's own probe passes. */
  recoveryMs: number;
  acked: number;
  lost: number;
  lostSample: string[];
  duplicates: number;
  retries: number;
  reconnects: number;
}

export interface ChaosReport {
  startedAt: string;
  durationSeconds: number;
  setup: { chatNodes: number; mysqlShards: number; redisNodes: number; pairs: number; ratePerSender: number };
  results: FaultResult[];
  ok: boolean;
}

interface Ctx {
  users: ChatUser[];
  stack: StackServices;
  proxies: TcpProxy[];
  gate: GateClient;
  options: ChaosOptions;
}

interface Fault {
  name: string;
  description: (o: ChaosOptions) => string;
  inject(ctx: Ctx): Promise<void>;
  /** How long the fault lasts before heal (0: heal at once, the system must cope alone). */
  holdMs(o: ChaosOptions): number;
  heal(ctx: Ctx): Promise<void>;
  /** Puts back what the fault took (a killed process) once recovery is measured. */
  restore?(ctx: Ctx): Promise<void>;
  /** The fault's own sign of recovery besides chat (e.g. gate logs in again). */
  probe?(ctx: Ctx): Promise<boolean>;
}

/**
 * Signals pid; for a signal that ends it, waits until it is gone (a SIGTERM'd service may take
 * up to SHUTDOWN_TIMEOUT_MS, and restarting it before then would find it still there).
 */
async function kill(pid: number, signal: NodeJS.Signals): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    process.kill(pid, signal);
  } catch {
    return; // Already gone.
  }
  if (signal === "SIGSTOP" || signal === "SIGCONT") return;
  for (const deadline = Date.now() + 60_000; alive() && Date.now() < deadline; ) await sleep(50);
}

async function redisMasterPort(stack: StackServices): Promise<number> {
  for (const port of stack.stack.redisPorts) {
    const { stdout } = await run("redis-cli", ["-p", String(port), "role"]).catch(() => ({ stdout: "" }));
    if (stdout.startsWith("master")) return port;
  }
  throw new Error("no redis master found");
}

async function pidOfPort(kind: "redis" | "mariadb", port: number): Promise<number> {
  if (kind === "redis") {
    const { stdout } = await run("redis-cli", ["-p", String(port), "info", "server"]);
    const pid = /process_id:(\d+)/.exec(stdout)?.[1];
    if (!pid) throw new Error(`no pid for redis ${port}`);
    return Number(pid);
  }
  const { stdout } = await run("pgrep", ["-f", `mariadbd .*--port=${port}( |$)`]);
  const pid = stdout.trim().split("\n")[0];
  if (!pid) throw new Error(`no mariadbd on ${port}`);
  return Number(pid);
}

async function chatNodesLive(stack: StackServices): Promise<number> {
  const status = grpcClient(StatusServiceService, stack.statusAddr, stackGrpcOptions(stack.stack));
  try {
    return (await status.api.listNodes({})).nodes.length;
  } finally {
    status.close();
  }
}

/** A login through gate: Redis (tokens), status and the users' shard all answer. */
async function loginWorks(ctx: Ctx): Promise<boolean> {
  const user = ctx.users[0];
  if (!user) return true;
  try {
    await ctx.gate.login(user.name, user.password);
    return true;
  } catch {
    return false;
  }
}

/** State kept between inject and heal of one fault. */
const held = new Map<string, number>();

export const FAULTS: Fault[] = [
  {
    name: "chat-node-kill9",
    description: () => "kill -9 of chat node chat-2 (its users reconnect through gate to the ring's next node)",
    holdMs: () => 0,
    async inject({ stack }) {
      await kill(stack.pidOf("chat-2"), "SIGKILL");
    },
    async heal() {},
    async restore({ stack }) {
      await stack.restart({ servicesOnly: true });
      await waitFor("3 chat nodes", async () => (await chatNodesLive(stack)) === stack.chatNodes.length, 60_000);
    },
  },
  {
    name: "redis-master-kill9",
    description: () => "kill -9 of a Redis Cluster master (its replica takes over)",
    holdMs: () => 0,
    async probe(ctx) {
      return loginWorks(ctx);
    },
    async inject({ stack }) {
      const port = await redisMasterPort(stack);
      held.set("redis-port", port);
      await kill(await pidOfPort("redis", port), "SIGKILL");
    },
    async heal() {},
    async restore({ stack }) {
      await restoreKilledRedisMaster(stack.stack, held.get("redis-port") as number);
    },
  },
  {
    name: "mysql-shard-stop",
    description: (o) => `one MySQL shard (the third instance) frozen with SIGSTOP for ${o.mysqlStopMs / 1000} s`,
    holdMs: (o) => o.mysqlStopMs,
    async inject({ stack }) {
      const port = stack.stack.mysqlPorts[2] ?? stack.stack.mysqlPorts[1] ?? 0;
      const pid = await pidOfPort("mariadb", port);
      held.set("mysql-pid", pid);
      await kill(pid, "SIGSTOP");
    },
    async heal() {
      const pid = held.get("mysql-pid");
      if (pid) await kill(pid, "SIGCONT");
    },
  },
  {
    name: "status-stop",
    description: (o) => `status stopped for ${o.holdMs / 1000} s, then started again`,
    holdMs: (o) => o.holdMs,
    async inject({ stack }) {
      await kill(stack.pidOf("status"), "SIGTERM");
    },
    async probe(ctx) {
      return loginWorks(ctx);
    },
    async heal({ stack }) {
      await stack.restart({ servicesOnly: true });
    },
  },
  {
    name: "verify-stop",
    description: (o) => `verify stopped for ${o.holdMs / 1000} s, then started again`,
    holdMs: (o) => o.holdMs,
    async inject({ stack }) {
      await kill(stack.pidOf("verify"), "SIGTERM");
    },
    async heal({ stack }) {
      await stack.restart({ servicesOnly: true });
    },
    async probe({ gate }) {
      try {
        await gate.requestVerifyCode(`probe-${Date.now()}-${Math.random().toString(36).slice(2)}@chaos.test`);
        return true;
      } catch {
        return false;
      }
    },
  },
  {
    name: "network-delay",
    description: (o) => `${o.delayMs} ms added each way between clients and chat-1 for ${o.holdMs / 1000} s`,
    holdMs: (o) => o.holdMs,
    async inject({ proxies, options }) {
      if (proxies[0]) proxies[0].delayMs = options.delayMs;
    },
    async heal({ proxies }) {
      if (proxies[0]) proxies[0].delayMs = 0;
    },
  },
  {
    name: "gate-restart",
    description: () => "gate stopped and started again (logins and reconnects wait for it)",
    holdMs: () => 0,
    async inject({ stack }) {
      await kill(stack.pidOf("gate"), "SIGTERM");
    },
    async heal({ stack }) {
      await stack.restart({ servicesOnly: true });
    },
    async probe(ctx) {
      return loginWorks(ctx);
    },
  },
];

async function registerUsers(stack: StackServices, gate: GateClient, count: number): Promise<ChatUser[]> {
  const users: ChatUser[] = [];
  for (let i = 0; i < count; i++) {
    const name = `chaos${i}_${process.pid}`;
    const email = `${name}@chaos.test`;
    const password = `pw-${name}-secret`;
    await gate.requestVerifyCode(email);
    const code = codeFromMail(await stack.smtp.waitForMail(email));
    const { uid } = await gate.register({ user: name, email, password, code });
    users.push({ name, password, uid });
  }
  return users;
}

/** Waits until every sender's sends started at or after `since` are acked; answers when (ms epoch). */
async function recovered(load: SteadyChat, since: number, probe: () => Promise<boolean>): Promise<number> {
  let probedAt: number | undefined;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
    if (probedAt === undefined && (await probe())) probedAt = Date.now();
    const firsts = [...load.firstAckSince(since).values()];
    if (probedAt !== undefined && firsts.every((t) => t !== undefined)) {
      return Math.max(probedAt, ...(firsts as number[]));
    }
  }
  throw new Error("no recovery within 120 s");
}

/**
 * Starts the multi-shard stack (3 chat nodes behind delaying TCP proxies), registers users,
 * then for each fault: steady chat, inject, hold, heal, measure recovery, restore, check that
 * every acked message arrived exactly once.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const proxyBase = await freePortRun(3);
  const stack = await startStackServices("chaos", {
    chatNodes: 3,
    env: {
      STACK_CHAT_PUBLIC_TCP_BASE: String(proxyBase),
      CHAT_PUBLIC_HOST: "127.0.0.1",
      // Reconnecting clients must not be held back by the per-address login and code limits.
      LOGIN_MAX_FAILURES: "1000",
      LOGIN_MAX_PER_ADDR_PER_MINUTE: "1000000",
      LOGIN_MAX_PER_SECOND: "1000000",
      // The load is the point here, not the abuse limits (as in every load run): a run at half
      // the stack's throughput sends far more than CHAT_CONN_MSGS_PER_SECOND per connection.
      CHAT_CONN_MSGS_PER_SECOND: "1000000",
      CHAT_USER_MSGS_PER_SECOND: "1000000",
      CHAT_IDLE_TIMEOUT_MS: "20000",
      CHAT_CLIENT_HEARTBEAT_MS: "5000",
    },
  });
  const proxies: TcpProxy[] = [];
  const results: FaultResult[] = [];
  try {
    for (const [i, node] of stack.chatNodes.entries()) {
      proxies.push(await startTcpProxy("127.0.0.1", node.tcpPort, proxyBase + i));
    }
    const gate = new GateClient(stack.gateUrl);
    const users = await registerUsers(stack, gate, options.pairs * 2);
    const pairs = Array.from(
      { length: options.pairs },
      (_, i) => [users[2 * i], users[2 * i + 1]] as [ChatUser, ChatUser],
    );
    const ctx: Ctx = { users, stack, proxies, gate, options };

    for (const fault of FAULTS.filter((f) => !options.only || options.only.includes(f.name))) {
      log(`[chaos] ${fault.name}: steady load`);
      const load = new SteadyChat(stack.gateUrl, pairs, options.ratePerSender, Date.now().toString(36));
      await load.start();
      let injected = false;
      let healed = false;
      let restored = false;
      try {
        await sleep(options.warmupMs);
        const injectedAt = Date.now();
        log(`[chaos] ${fault.name}: inject`);
        await fault.inject(ctx);
        injected = true;
        await sleep(fault.holdMs(options));
        await fault.heal(ctx);
        healed = true;
        const healedAt = fault.holdMs(options) === 0 ? injectedAt : Date.now();
        const at = await recovered(load, healedAt, () => (fault.probe ? fault.probe(ctx) : Promise.resolve(true)));
        const recoveryMs = at - healedAt;
        log(`[chaos] ${fault.name}: recovered in ${recoveryMs} ms`);
        restored = true;
        if (fault.restore) await fault.restore(ctx);
        await sleep(options.warmupMs);
        const summary = await load.stop();
        results.push({
          fault: fault.name,
          description: fault.description(options),
          heldMs: fault.holdMs(options),
          recoveryMs,
          acked: summary.acked,
          lost: summary.lost,
          lostSample: summary.lostSample,
          duplicates: summary.duplicates,
          retries: summary.retries,
          reconnects: summary.reconnects,
        });
        log(`[chaos] ${fault.name}: acked ${summary.acked}, lost ${summary.lost}, duplicates ${summary.duplicates}`);
      } finally {
        // Whatever failed above, the stack is left as it was found.
        if (injected && !healed) await fault.heal(ctx).catch(() => {});
        if (injected && !restored) await fault.restore?.(ctx).catch(() => {});
        await load.stop(1000).catch(() => {});
      }
    }
  } finally {
    for (const p of proxies) await p.close();
    await stack.stop();
  }
  return {
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    setup: {
      chatNodes: 3,
      mysqlShards: stack.stack.mysqlPorts.length,
      redisNodes: stack.stack.redisPorts.length,
      pairs: options.pairs,
      ratePerSender: options.ratePerSender,
    },
    results,
    ok: results.every((r) => r.lost === 0 && r.duplicates === 0),
  };
}

export function reportMarkdown(report: ChaosReport): string {
  const rows = report.results.map(
    (r) =>
      `| ${r.fault} | ${r.description} | ${(r.recoveryMs / 1000).toFixed(2)} s | ${r.acked} | ${r.lost} | ${r.duplicates} | ${r.retries} | ${r.reconnects} |`,
  );
  const s = report.setup;
  return [
    "# Fault-injection report",
    "",
    `Run ${report.startedAt} (${report.durationSeconds} s) by \`npm run chaos\` (test/chaos/): ${s.chatNodes} chat nodes, ` +
      `${s.mysqlShards} MySQL shards, a ${s.redisNodes}-node Redis Cluster, each its own process on one machine; ` +
      `${s.pairs} pairs of users chatting both ways at ${s.ratePerSender} messages/s per sender over TCP.`,
    "",
    "Each fault gets a fresh steady load: inject, hold, heal, then **recovery** = from the heal (or the kill, for faults " +
      "the system must absorb alone) until every sender has a new send acked (and the fault's probe passes: gate " +
      "logs in, verify mails). A failed send is retried with its clientMsgId, reconnecting through gate when the " +
      "connection died. **Lost** = acked messages that never reached the recipient; **duplicates** = a text shown " +
      "twice by the receiving app (under two message ids).",
    "",
    "| fault | what | recovery | acked | lost | duplicates | retried sends | reconnects |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `Verdict: ${report.ok ? "**no acked message lost, no duplicate**" : "**FAILED** (see lost/duplicates)"}.`,
    "",
    "Raw figures: [report.json](report.json).",
    "",
  ].join("\n");
}

export function writeReport(report: ChaosReport, dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(dir, "report.md"), reportMarkdown(report));
}

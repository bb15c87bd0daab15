/**
 * `npm run bench`: shardchat against two references, same machine, same run, same load tool
 * and message sizes. The systems, one after the other (each selectable with --only):
 *
 *   shardchat        the multi-shard stack (ops/stack/up.sh: 3 chat-node processes, gate,
 *                    status, verify, 3 MariaDB shards, a private 6-node Redis Cluster);
 *   embedded-sqlite  shardchat as `npm start` runs it with no settings: one process, one chat
 *                    node, SQLite in a fresh temporary DATA_DIR, in-memory routing;
 *   embedded-mysql   shardchat in one process with --nodes chat nodes on MySQL (127.0.0.1:3306)
 *                    + Redis (127.0.0.1:6379);
 *   ws-relay         a plain `ws` relay in as many processes (no storage, peers on one process):
 *                    the ceiling;
 *   socketio         Socket.IO + @socket.io/redis-adapter in as many processes (stores nothing).
 *
 * Clients speak WebSocket (shardchat binary frames). For each: chat-1to1 flat out, then at fixed
 * fractions of the first shardchat system's max (the latency-vs-rate curve; every later system
 * gets the same rates). Each shardchat system also gets a login storm and a group fan-out at
 * each --group-rate (one group of --group-members). Then, on a fresh start of the system, idle
 * connections (memory per connection).
 *
 * Around every chat and group run it reads what the run cost (bench/load/usage.ts): CPU of every
 * process of the system (services, each MariaDB and Redis process it uses) and of the load
 * generator, the machine's CPU (/proc/stat), Redis commands (INFO commandstats, every node) and
 * MariaDB statements and commits (SHOW GLOBAL STATUS, every instance), per message acked.
 * A run that loses, repeats or reorders a message fails the bench (exit 1).
 * Writes bench/results/<date>.json, .md (the report with ratios) and .svg.
 *
 *   npm run bench -- [--only shardchat,embedded-sqlite,embedded-mysql,ws-relay,socketio]
 *     [--pairs 20] [--window 8] [--seconds 8] [--size 64] [--connections 5000] [--logins 30]
 *     [--group-members 2000] [--group-rate 2,10] [--group-drain-seconds 60] [--nodes 3]
 *     [--rates 800,1600] (fixed rates in msg/s for every system, instead of fractions of the
 *     first shardchat system's max: runs of two versions then compare at the same load)
 *     [--warmup-seconds 15] (before the measured runs, each system gets this long of chat-1to1 flat
 *     out, not measured: its JIT compiles the hot path first, as in a server that has run a while)
 *     [--perf] (during each flat-out run, `perf record -a -e cpu-clock`, read for every process of the
 *     system and on the load generator: each one's top symbols in µs per message, JavaScript
 *     frames named (bench/load/run.sh starts every Node process with --perf-basic-prof); needs
 *     perf, from Debian's linux-perf)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ChatLoadReport, startChatLoad } from "./load/chat.js";
import { CpuProfiler, type ProcessProfile, perfAvailable } from "./load/cpu-profile.js";
import { type GroupLoadReport, startGroupLoad } from "./load/group.js";
import {
  chatTable,
  checkCell,
  groupKeepUpTable,
  groupTable,
  latencyBreakdownTable,
  latencyChart,
  markdownTable,
} from "./load/report.js";
import { type ConnectReport, type LoginStormReport, runConnect, runLoginStorm } from "./load/scenarios.js";
import {
  ROOT,
  startEmbedded,
  startEmbeddedSqlite,
  startSocketIo,
  startStack,
  startWsRelay,
  type Target,
} from "./load/targets.js";
import {
  MYSQL_COUNTERS,
  type MysqlCounter,
  per,
  settled,
  type Usage,
  UsageMeter,
  type UsageSnapshot,
} from "./load/usage.js";
import { exitWithUsage } from "./usage.js";

const SYSTEMS = ["shardchat", "embedded-sqlite", "embedded-mysql", "ws-relay", "socketio"] as const;
type SystemKey = (typeof SYSTEMS)[number];

const { values } = parseArgs({
  options: {
    pairs: { type: "string", default: "20" },
    window: { type: "string", default: "8" },
    seconds: { type: "string", default: "8" },
    size: { type: "string", default: "64" },
    connections: { type: "string", default: "5000" },
    logins: { type: "string", default: "30" },
    "group-members": { type: "string", default: "2000" },
    "group-rate": { type: "string", default: "2,10" },
    "group-drain-seconds": { type: "string", default: "60" },
    nodes: { type: "string", default: "3" },
    only: { type: "string", default: SYSTEMS.join(",") },
    rates: { type: "string", default: "" },
    "warmup-seconds": { type: "string", default: "15" },
    perf: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) exitWithUsage(import.meta.url);
const only = new Set(values.only?.split(",").map((s) => s.trim()));
for (const name of only)
  if (!(SYSTEMS as readonly string[]).includes(name)) {
    console.error(`--only: unknown system ${name} (the systems: ${SYSTEMS.join(", ")})`);
    process.exit(2);
  }
const settings = {
  pairs: Number(values.pairs),
  windowPerSender: Number(values.window),
  secondsPerRun: Number(values.seconds),
  warmupSeconds: Number(values["warmup-seconds"]),
  textChars: Number(values.size),
  idleConnections: Number(values.connections),
  logins: Number(values.logins),
  groupMembers: Number(values["group-members"]),
  groupPostsPerSecond: (values["group-rate"] ?? "2").split(",").map(Number),
  groupDrainSeconds: Number(values["group-drain-seconds"]),
  processes: Number(values.nodes),
  rateFractions: [0.25, 0.5, 0.75],
  /** --rates: the same fixed rates for every system instead of the fractions. */
  fixedRates: (values.rates ?? "")
    .split(",")
    .filter((r) => r.trim() !== "")
    .map(Number),
  /** The system whose flat-out throughput the fixed rates are fractions of (set once measured). */
  ratesFrom: "",
  transport: "WebSocket (shardchat: binary protobuf frames; references: JSON text frames)",
  loadWorkers: 2,
  systems: SYSTEMS.filter((s) => only.has(s)),
  /** --perf: on-CPU profiles of every process in the flat-out runs. */
  perf: values.perf === true,
};
if (settings.perf && !perfAvailable()) {
  console.error(
    "--perf: `perf record -a -e cpu-clock` does not run here (install linux-perf; as a user, lower kernel.perf_event_paranoid)",
  );
  process.exit(2);
}
for (const [name, v] of Object.entries(settings))
  if (typeof v === "number" && !(Number.isFinite(v) && v >= 0)) {
    console.error(`bad value for ${name}: ${v}`);
    process.exit(2);
  }

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0] ?? "";
  } catch {
    return "unknown";
  }
}

const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? "unknown",
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  platform: `${os.platform()} ${os.release()}`,
  node: process.version,
  mariadb: version("mariadbd", ["--version"]),
  redis: version("redis-server", ["--version"]),
  loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
};

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);
const progress = (s: string) => {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${s}`);
};
const endProgress = () => {
  if (process.stderr.isTTY) process.stderr.write("\n");
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What one message (or group post) cost, from a run's usage divided by its count. */
interface PerMessage {
  /** CPU ms of the processes holding the client connections (the figure the bench always gave). */
  connectionProcessesCpuMs: number;
  /** CPU ms of every process of the system: services, MariaDB, Redis. */
  systemCpuMs: number;
  loadGeneratorCpuMs: number;
  /** Busy CPU ms of the whole machine (every process, the kernel, other work). */
  machineCpuMs: number;
  /** Machine busy time none of the processes above accounts for. */
  otherCpuMs: number;
  /** Redis commands over every node, and of them on replicas (writes applied again). */
  redisCommands: number;
  redisReplicaCommands: number;
  /** The most frequent Redis commands, per message. */
  redisTopCommands: [string, number][];
  /** SHOW GLOBAL STATUS deltas over every MariaDB instance. */
  mysql: Record<MysqlCounter, number>;
}

function perMessage(usage: Usage, count: number, connectionPids: number[]): PerMessage {
  const holding = usage.processes.filter((p) => connectionPids.includes(p.pid)).reduce((a, p) => a + p.cpuMs, 0);
  return {
    connectionProcessesCpuMs: per(holding, count),
    systemCpuMs: per(usage.systemCpuMs, count),
    loadGeneratorCpuMs: per(usage.loadGeneratorCpuMs, count),
    machineCpuMs: per(usage.machine.busyCpuMs, count),
    otherCpuMs: per(usage.otherCpuMs, count),
    redisCommands: per(usage.redis.calls, count),
    redisReplicaCommands: per(usage.redis.replicaCalls, count),
    redisTopCommands: Object.entries(usage.redis.byCommand)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([cmd, n]) => [cmd, per(n, count)]),
    mysql: Object.fromEntries(MYSQL_COUNTERS.map((k) => [k, per(usage.mysql.counters[k], count)])) as Record<
      MysqlCounter,
      number
    >,
  };
}

/** A chat run: the load report, what it cost, and (as before) the connection holders' CPU per message. */
type ChatRun = ChatLoadReport & {
  serverCpuMsPerMessage: number;
  usage: Usage;
  perMessage: PerMessage;
  /** --perf, flat out: where each process's CPU went. */
  profiles?: ProcessProfile[];
};
/** A group run: the load report and what it cost per post (and the machine's CPU per delivery). */
type GroupRun = GroupLoadReport & { usage: Usage; perPost: PerMessage; machineCpuMsPerDelivery: number };

interface SystemResult {
  key: SystemKey;
  system: string;
  shardchat: boolean;
  /** The processes the CPU figures cover (the load generator comes on top). */
  processes: { role: string; pid: number }[];
  /** Stores whose process could not be found: their CPU is missing. */
  unaccounted: string[];
  stores: { redis: string[]; mysql: string[] };
  max: ChatRun;
  atRates: ChatRun[];
  connect: ConnectReport;
  loginStorm?: LoginStormReport;
  groups: GroupRun[];
}

let running: Target | undefined;
process.once("SIGINT", () => {
  log("interrupted: stopping what this run started");
  void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
});

async function chat(target: Target, meter: UsageMeter, rate: number): Promise<ChatRun> {
  const pairs = await target.pairs(settings.pairs);
  let before: UsageSnapshot | undefined;
  let profiler: CpuProfiler | undefined;
  const load = await startChatLoad({
    pairs,
    rate,
    window: settings.windowPerSender,
    size: settings.textChars,
    workers: settings.loadWorkers,
    // Counted from here: the connections are up and the servers done with earlier runs' work
    // (settled); the first message leaves right after.
    onReady: async () => {
      await settled(target.connectionPids());
      before = await meter.snapshot();
      if (settings.perf && rate === 0)
        profiler = CpuProfiler.start([...meter.processes, { role: "load generator (this process)", pid: process.pid }]);
    },
    onProgress: (p) =>
      progress(`${target.name}: ${rate || "max"} msg/s, ${(p.elapsedMs / 1000).toFixed(1)} s, ${p.acked} acked`),
  });
  await sleep(settings.secondsPerRun * 1000);
  // stop() lets what was sent arrive (the drain) before answering: that work is the run's too.
  const report = await load.stop();
  const usage = meter.between(before as UsageSnapshot, await meter.snapshot());
  const profiles = await profiler?.stop();
  const perMsg = perMessage(usage, report.acked, target.connectionPids());
  endProgress();
  log(
    `${rate || "max"} msg/s: acked ${report.ackedPerSecond}/s, p99 ${report.latencyMs.p99} ms, CPU ms/msg: ${perMsg.connectionProcessesCpuMs} connection holders, ${perMsg.systemCpuMs} system, ${perMsg.machineCpuMs} machine; ${perMsg.redisCommands} Redis cmds/msg, ${perMsg.mysql.Questions} SQL statements/msg; check ${checkCell(report)}`,
  );
  return {
    ...report,
    serverCpuMsPerMessage: perMsg.connectionProcessesCpuMs,
    usage,
    perMessage: perMsg,
    ...(profiles ? { profiles } : {}),
  };
}

/** Chat flat out, not measured, so the measured runs find the hot path compiled. */
async function warmUp(target: Target): Promise<void> {
  const load = await startChatLoad({
    pairs: await target.pairs(settings.pairs),
    window: settings.windowPerSender,
    size: settings.textChars,
    workers: settings.loadWorkers,
    onProgress: (p) => progress(`${target.name}: warming up, ${(p.elapsedMs / 1000).toFixed(1)} s, ${p.acked} acked`),
  });
  await sleep(settings.warmupSeconds * 1000);
  const report = await load.stop();
  endProgress();
  log(`warm-up: ${report.ackedPerSecond} msg/s for ${settings.warmupSeconds} s, check ${checkCell(report)}`);
  if (!report.check.ok) throw new Error(`the warm-up run failed its check: ${checkCell(report)}`);
}

async function group(target: Target, meter: UsageMeter, rate: number): Promise<GroupRun> {
  let before: UsageSnapshot | undefined;
  // Fresh members for each group: a member of an earlier group could be handed its backlog.
  const load = await startGroupLoad({
    members: await target.tickets(settings.groupMembers),
    rate,
    size: settings.textChars,
    drainTimeoutMs: settings.groupDrainSeconds * 1000,
    onReady: async () => {
      await settled(target.connectionPids());
      before = await meter.snapshot();
    },
    onProgress: (p) => progress(`group-fanout ${rate} posts/s: ${p.sent} posted, ${p.delivered} delivered`),
  });
  await sleep(settings.secondsPerRun * 1000);
  const report = await load.stop();
  const usage = meter.between(before as UsageSnapshot, await meter.snapshot());
  endProgress();
  const posts = report.sent - report.sendErrors;
  const run: GroupRun = {
    ...report,
    usage,
    perPost: perMessage(usage, posts, target.connectionPids()),
    machineCpuMsPerDelivery: per(usage.machine.busyCpuMs, report.delivered),
  };
  log(
    `group of ${report.members} at ${rate} posts/s: ${report.deliveredWhileSendingPerSecond} of ${report.offeredDeliveriesPerSecond} offered deliveries/s while posting, drain ${report.drainSeconds} s, p99 ${report.latencyMs.p99} ms, check ${checkCell(report)}`,
  );
  return run;
}

async function measure(
  key: SystemKey,
  start: () => Promise<Target>,
  rates: (max: ChatRun) => number[],
  isShardchat: boolean,
): Promise<SystemResult> {
  const runs = await measureRuns(start, rates, isShardchat);
  // Memory on fresh processes of their own, after the rest: after the chat runs their heaps hold
  // garbage whose collection would move RSS by more than the connections do, and the full GC
  // goes through each process's inspector, which leaves it slower for the rest of its life
  // (the stack acked about a fifth fewer messages flat out after it).
  const target = await start();
  running = target;
  try {
    const connect = await runConnect(target, { count: settings.idleConnections, onProgress: progress });
    endProgress();
    log(
      `idle connections: ${connect.held}/${connect.requested} held, ${connect.rssPerConnectionBytes} bytes RSS each (${connect.rssRetainedPerConnectionBytes ?? "n/a"} after a full GC), ${connect.connectsPerSecond} connects/s`,
    );
    return { key, shardchat: isShardchat, ...runs, connect };
  } finally {
    await target.stop();
    running = undefined;
  }
}

/** Everything but the idle connections: chat flat out and at the rates, the login storm, the groups. */
async function measureRuns(
  start: () => Promise<Target>,
  rates: (max: ChatRun) => number[],
  isShardchat: boolean,
): Promise<Omit<SystemResult, "key" | "shardchat" | "connect">> {
  const target = await start();
  running = target;
  log(`system: ${target.name}`);
  let meter: UsageMeter | undefined;
  try {
    meter = await UsageMeter.open({
      processes: target.processes?.() ?? target.connectionPids().map((pid) => ({ role: "server", pid })),
      redis: target.stores?.redis ?? [],
      mysql: target.stores?.mysql ?? [],
    });
    if (meter.unaccounted.length > 0) log(`no process found for ${meter.unaccounted.join(", ")}: its CPU is missing`);
    if (settings.warmupSeconds > 0) await warmUp(target);
    const max = await chat(target, meter, 0);
    const atRates: ChatRun[] = [];
    for (const rate of rates(max)) atRates.push(await chat(target, meter, rate));
    const loginStorm = isShardchat ? await runLoginStorm(target, { users: settings.logins }) : undefined;
    if (loginStorm) log(`login storm: ${loginStorm.loginsPerSecond} logins/s, p99 ${loginStorm.loginLatencyMs.p99} ms`);
    const groups: GroupRun[] = [];
    if (isShardchat && settings.groupMembers > 1)
      for (const rate of settings.groupPostsPerSecond) if (rate > 0) groups.push(await group(target, meter, rate));
    return {
      system: target.name,
      processes: meter.processes,
      unaccounted: meter.unaccounted,
      stores: {
        redis: (target.stores?.redis ?? []).map((h) => `${h.host}:${h.port}`),
        mysql: (target.stores?.mysql ?? []).map((h) => `${h.host}:${h.port}`),
      },
      max,
      atRates,
      ...(loginStorm ? { loginStorm } : {}),
      groups,
    };
  } finally {
    await meter?.close();
    await target.stop();
    running = undefined;
  }
}

const began = Date.now();
const results: SystemResult[] = [];
/** Systems that could not be measured (did not start, or a run threw): the bench fails. */
const failures: { system: SystemKey; error: string }[] = [];
let rateBasis = 0;
const fractionsOf = (max: number) => settings.rateFractions.map((f) => Math.max(1, Math.round(max * f)));
// Every system at the same offered rates, fractions of the first shardchat system's max, so
// latencies compare at equal load.
const sameRates = () => (rateBasis > 0 ? fractionsOf(rateBasis) : []);
const starts: Record<SystemKey, { start: () => Promise<Target>; shardchat: boolean }> = {
  shardchat: { start: () => startStack({ chatNodes: settings.processes, transport: "ws" }), shardchat: true },
  "embedded-sqlite": { start: () => startEmbeddedSqlite({ transport: "ws" }), shardchat: true },
  "embedded-mysql": {
    start: () => startEmbedded({ chatNodes: settings.processes, transport: "ws" }),
    shardchat: true,
  },
  "ws-relay": { start: () => startWsRelay(settings.processes), shardchat: false },
  socketio: { start: () => startSocketIo(settings.processes), shardchat: false },
};
for (const key of settings.systems) {
  const { start, shardchat } = starts[key];
  try {
    const setsRates = shardchat && rateBasis === 0;
    const r = await measure(
      key,
      start,
      (max) =>
        settings.fixedRates.length > 0
          ? settings.fixedRates
          : setsRates
            ? fractionsOf(max.ackedPerSecond)
            : sameRates(),
      shardchat,
    );
    if (setsRates && r.max.ackedPerSecond > 0) {
      rateBasis = r.max.ackedPerSecond;
      settings.ratesFrom = r.system;
    }
    results.push(r);
  } catch (err) {
    endProgress();
    const error = (err as Error).stack ?? String(err);
    log(`${key} FAILED: ${error}`);
    failures.push({ system: key, error: (err as Error).message.split("\n").slice(0, 3).join(" ") });
  }
}

// --- the report --------------------------------------------------------------------------------
const ours = results.filter((r) => r.shardchat);
const refs = results.filter((r) => !r.shardchat);
const runsOf = (r: SystemResult) => [r.max, ...r.atRates];
const atHalf = (r: SystemResult) => r.atRates[settings.rateFractions.indexOf(0.5)];
const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : "n/a");
const rateLabel = (x: ChatRun) => (x.offeredRate === "max" ? "flat out" : `${x.offeredRate} msg/s`);
const allOk =
  failures.length === 0 &&
  results.every((r) => runsOf(r).every((x) => x.check.ok) && r.connect.ok && r.groups.every((g) => g.check.ok));
const date = new Date().toISOString();
const stamp = date.replace(/[:.]/g, "-");
const dir = join(ROOT, "bench/results");
mkdirSync(dir, { recursive: true });
const chatRuns = results.flatMap((r) => [...r.atRates, r.max].map((report) => ({ system: r.system, report })));
const dash = "–";
const cell = (v: number, has: boolean) => (has ? v : dash);

const lines: string[] = [
  `# shardchat benchmark, ${date}`,
  "",
  `Machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.platform}; Node ${machine.node}; ${machine.mariadb}; ${machine.redis}. Load average (1, 5, 15 min) at start: ${machine.loadAverageAtStart.join(", ")}, at the end: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(
      ", ",
    )} (other work on the machine competes with every figure below; the "not accounted" CPU column shows how much of it there was). The load generator runs on the same machine (${settings.loadWorkers} worker threads).`,
  "",
  `Settings: systems ${settings.systems.join(", ")}; ${settings.pairs} pairs (both members send), ${settings.windowPerSender} sends in flight per sender when flat out, ${settings.textChars}-character texts, ${settings.secondsPerRun} s per run after ${settings.warmupSeconds} s of warm-up flat out (not measured), ${settings.processes} processes per system${only.has("embedded-sqlite") ? " (chat nodes in one process for embedded-mysql; embedded-sqlite runs 1, as npm start does)" : only.has("embedded-mysql") ? " (chat nodes in one process for embedded-mysql)" : ""}, ${settings.idleConnections} idle connections; fixed rates ${settings.fixedRates.length > 0 ? `${settings.fixedRates.join(", ")} msg/s (--rates), for every system` : `${settings.rateFractions.map((f) => `${f * 100} %`).join(", ")} of ${settings.ratesFrom ? `${settings.ratesFrom}'s flat-out throughput (${rateBasis} msg/s), for every later system` : "a shardchat system's flat-out throughput: none was measured, so there were no fixed-rate runs"}`}; group fan-out: ${settings.groupMembers} members, ${settings.groupPostsPerSecond.join(" and ")} posts/s, ${settings.groupDrainSeconds} s drain at most; ${settings.transport}. Pairs span two nodes where the system routes between nodes (shardchat with several chat nodes, Socket.IO), one process for the relay (it cannot route).`,
  "",
];
if (failures.length > 0)
  lines.push(
    "## Systems that could not be measured",
    "",
    markdownTable(
      ["system", "error"],
      failures.map((f) => [f.system, f.error.replace(/\|/g, "\\|")]),
    ),
    "",
  );
lines.push(
  "## Chat 1:1",
  "",
  chatTable(chatRuns),
  "",
  "### Latency breakdown",
  "",
  "Send → ack: until the sender's request is answered (shardchat: the message is stored). Ack → push: from that ack to the peer's receipt of the same message, both seen by one load worker on one clock; a push that arrived before its ack counts 0 and is counted in the \"push before ack\" column.",
  "",
  latencyBreakdownTable(chatRuns),
  "",
  "### Server CPU per message",
  "",
  "CPU time (user + system) of the processes holding the connections (shardchat: its chat nodes, not MariaDB or Redis) over the run, divided by the messages acked; it holds up better than throughput when other work shares the machine. The next tables add every other process.",
  "",
);
const cpuColumns = [...new Set(results.flatMap((r) => [...r.atRates, r.max].map(rateLabel)))];
lines.push(
  markdownTable(
    ["system", ...cpuColumns],
    results.map((r) => [
      r.system,
      ...cpuColumns.map((c) => {
        const x = runsOf(r).find((run) => rateLabel(run) === c);
        return x ? `${x.serverCpuMsPerMessage} ms` : dash;
      }),
    ]),
  ),
  "",
  "### CPU per message: the whole system and the whole machine",
  "",
  "Per message acked, in CPU ms. Connection holders: as above. Whole system: every process of it, MariaDB and Redis included (the processes are listed below). Load generator: this process (its worker threads drive the clients). Machine: busy time of every core from /proc/stat, whoever spent it. Not accounted: machine minus system minus load generator: the kernel's work charged to no process (irq + softirq, mostly the network, shown apart) and any other work on the machine (named below when it was more than a tenth of the machine's busy time). Context switches: of every core per message (/proc/stat ctxt), a count, not ms: each is a process put to sleep or woken, which on this kind of virtual machine costs far more than the work it wakes for (`npm run bench:store` measures one round trip alone).",
  "",
  markdownTable(
    [
      "system",
      "offered msg/s",
      "acked msg/s",
      "connection holders",
      "whole system",
      "load generator",
      "machine",
      "not accounted",
      "kernel irq + softirq",
      "context switches",
      "machine busy",
    ],
    results.flatMap((r) =>
      [...r.atRates, r.max].map((x) => [
        r.system,
        x.offeredRate,
        x.ackedPerSecond,
        x.perMessage.connectionProcessesCpuMs,
        x.perMessage.systemCpuMs,
        x.perMessage.loadGeneratorCpuMs,
        x.perMessage.machineCpuMs,
        x.perMessage.otherCpuMs,
        per(x.usage.machine.softirqCpuMs, x.acked),
        Math.round((x.usage.machine.contextSwitches / Math.max(1, x.acked)) * 10) / 10,
        `${x.usage.machine.busyPercent} % of ${x.usage.cpus} cores`,
      ]),
    ),
  ),
  "",
  "### CPU by process (flat out)",
  "",
  "Every process of each system in the flat-out run: CPU ms per message acked and its share of one core over the run (100 % = one core busy the whole time). MariaDB and Redis processes are found by their ports (Redis: INFO's process_id; MariaDB: its pid file, else the listening socket).",
  "",
  markdownTable(
    ["system", "process", "pid", "CPU ms per message", "share of one core"],
    results.flatMap((r) =>
      r.max.usage.processes.map((p) => [
        r.system,
        p.role + (p.exited ? " (exited during the run)" : ""),
        p.pid,
        per(p.cpuMs, r.max.acked),
        `${p.coreShare} %`,
      ]),
    ),
  ),
  "",
);
const profiled = results.filter((r) => r.max.profiles);
if (profiled.length > 0) {
  // The run's usage lists the load generator among the processes too.
  const usOf = (r: SystemResult, pid: number) => r.max.usage.processes.find((p) => p.pid === pid)?.cpuMs ?? 0;
  const us = (share: number, cpuMs: number, acked: number) => Math.round((share * cpuMs * 1000) / acked);
  lines.push(
    "### Where each process's CPU goes (flat out, --perf)",
    "",
    "On-CPU samples (`perf record -a -e cpu-clock`, read per process, every thread of it) during the flat-out run, as µs of CPU per message acked: the process's CPU per message times each part's share of its samples. A sample is taken only while the thread runs on a core, so waiting, preemption and blocking are not in it. JavaScript: the JIT's code for a named function; V8 builtins and ICs: property loads, calls, promises, the interpreter; server: MariaDB's or Redis's own code.",
    "",
    markdownTable(
      ["system", "process", "CPU µs/msg", "by kind, µs/msg", "top symbols, µs/msg"],
      profiled.flatMap((r) =>
        (r.max.profiles ?? [])
          .filter((p) => p.samples > 0)
          .map((p) => {
            const cpuMs = usOf(r, p.pid);
            return [
              r.system,
              p.role,
              Math.round((cpuMs * 1000) / r.max.acked),
              Object.entries(p.kinds)
                .sort((a, b) => b[1] - a[1])
                .map(([kind, share]) => `${kind} ${us(share, cpuMs, r.max.acked)}`)
                .join(", "),
              p.top
                .slice(0, 8)
                .map((t) => `\`${t.symbol.replace(/\|/g, "\\|").slice(0, 70)}\` ${us(t.share, cpuMs, r.max.acked)}`)
                .join(", "),
            ];
          }),
      ),
    ),
    "",
  );
}
const busyElsewhere = results.flatMap((r) =>
  [
    ...[...r.atRates, r.max].map((x) => ({ run: `chat-1to1 ${x.offeredRate} msg/s`, usage: x.usage })),
    ...r.groups.map((g) => ({ run: `group ${g.offeredRate} posts/s`, usage: g.usage })),
  ]
    .filter(({ usage }) => {
      const elsewhere = usage.otherCpuMs - usage.machine.softirqCpuMs;
      return elsewhere > 0.1 * usage.machine.busyCpuMs && elsewhere > 100;
    })
    .map(({ run, usage }) => [
      r.system,
      run,
      `${Math.round((usage.otherCpuMs / Math.max(1, usage.machine.busyCpuMs)) * 100)} %`,
      usage.others.map((o) => `${o.command} (pid ${o.pid}): ${o.cpuMs} ms`).join("; ") || dash,
    ]),
);
if (busyElsewhere.length > 0)
  lines.push(
    "### Other work on the machine during the runs",
    "",
    "Runs where CPU outside the system, the load generator and the kernel's irq/softirq took more than a tenth of the machine's busy time: their latency and throughput figures are disturbed (CPU per message of the system's own processes much less). The processes that used the most CPU meanwhile, with the CPU they used over the run (a process that started and ended within the run cannot be named: what the list does not add up to went to such processes):",
    "",
    markdownTable(
      ["system", "run", "not accounted, of machine busy", "top other processes"],
      busyElsewhere.map((row) => row.map((c) => String(c).replace(/\|/g, "\\|"))),
    ),
    "",
  );
const missing = results.filter((r) => r.unaccounted.length > 0);
if (missing.length > 0)
  lines.push(
    `No process was found for ${missing.map((r) => `${r.unaccounted.join(", ")} (${r.system})`).join("; ")}: their CPU is missing from "whole system" and lands in "not accounted".`,
    "",
  );
const hasRedis = (r: SystemResult) => r.stores.redis.length > 0;
const hasMysql = (r: SystemResult) => r.stores.mysql.length > 0;
const hasStores = (r: SystemResult) => hasRedis(r) || hasMysql(r);
const storeless = results.filter((r) => !hasStores(r)).map((r) => r.system);
const topCommands = (p: PerMessage) => p.redisTopCommands.map(([c, n]) => `${c} ${n}`).join(", ") || dash;
lines.push(
  "### Redis commands and MariaDB statements per message",
  "",
  `Per message acked: Redis commands from INFO commandstats, summed over every node (for a cluster every member, replicas included: a write counts again on each replica that applies it, shown apart), and MariaDB counters from SHOW GLOBAL STATUS, summed over every instance: statements (Questions), SELECT, INSERT, UPDATE, BEGIN, COMMIT (explicit), Handler_commit (every storage-engine commit, autocommitted statements included) and InnoDB fsyncs. The meter's own reads are taken out. These are server-wide counters: other clients of the same server during the run (the machine's MariaDB on 3306 and Redis on 6379 serve other work too) are in them. – : the system uses no such store.${storeless.length > 0 ? ` Not listed, using neither: ${storeless.join("; ")}${results.some((r) => r.key === "embedded-sqlite") ? " (the SQLite system's storage work is inside its process's CPU)" : ""}.` : ""}`,
  "",
  results.some(hasStores)
    ? markdownTable(
        [
          "system",
          "offered msg/s",
          "Redis nodes",
          "Redis cmds",
          "of which on replicas",
          "top Redis commands",
          "MariaDB instances",
          "statements",
          "SELECT",
          "INSERT",
          "UPDATE",
          "BEGIN",
          "COMMIT",
          "Handler_commit",
          "InnoDB fsyncs",
        ],
        results.filter(hasStores).flatMap((r) =>
          [...r.atRates, r.max].map((x) => {
            const p = x.perMessage;
            const m = (k: MysqlCounter) => cell(p.mysql[k], hasMysql(r));
            return [
              r.system,
              x.offeredRate,
              x.usage.redis.nodes.length,
              cell(p.redisCommands, hasRedis(r)),
              cell(p.redisReplicaCommands, hasRedis(r)),
              hasRedis(r) ? topCommands(p) : dash,
              x.usage.mysql.instances.length,
              m("Questions"),
              m("Com_select"),
              m("Com_insert"),
              m("Com_update"),
              m("Com_begin"),
              m("Com_commit"),
              m("Handler_commit"),
              cell(p.mysql.Innodb_data_fsyncs + p.mysql.Innodb_os_log_fsyncs, hasMysql(r)),
            ];
          }),
        ),
      )
    : "(No system measured here uses Redis or MariaDB.)",
  "",
  "## Idle connections",
  "",
  "RSS growth of the processes holding the connections, per connection. The connections open in two halves. As read: all of them, after they settle (V8 has usually not collected the second half's login garbage yet). After a full GC: the second half's growth, RSS read after a full GC in each of those processes with half and with all of them held (what one more connection retains, in processes past their start-up). The GC goes through the inspector each Node process opens on SIGUSR1.",
  "",
  markdownTable(
    ["system", "held", "connects/s", "RSS per connection, as read (bytes)", "after a full GC (bytes)"],
    results.map((r) => [
      r.system,
      `${r.connect.held}/${r.connect.requested}`,
      r.connect.connectsPerSecond,
      r.connect.rssPerConnectionBytes,
      r.connect.rssRetainedPerConnectionBytes ?? "n/a",
    ]),
  ),
  "",
);
const storms = ours.filter((r) => r.loginStorm);
if (storms.length > 0) {
  lines.push(
    "## Login storm",
    "",
    markdownTable(
      ["system", "users", "logins/s", "login p50 ms", "login p99 ms", "connects/s", "failed"],
      storms.map((r) => {
        const l = r.loginStorm as LoginStormReport;
        return [
          r.system,
          l.users,
          l.loginsPerSecond,
          l.loginLatencyMs.p50,
          l.loginLatencyMs.p99,
          l.connectsPerSecond,
          l.failed,
        ];
      }),
    ),
    "",
  );
}
const groupRuns = ours.flatMap((r) => r.groups.map((report) => ({ system: r.system, report, result: r })));
if (groupRuns.length > 0) {
  lines.push(
    "## Group fan-out",
    "",
    "One group, one member posting at the rate; every other member must get every post once, in order. Offered deliveries/s = (members - 1) x posts/s. Delivered while posting: what arrived before the posts stopped (per second of posting time, and against the (members - 1) x posts made); the drain is how long the last deliveries took after the stop. Keeps up: at least 90 % of the owed deliveries arrived while posting and the rest within 2 s (a system that falls behind piles up a backlog that takes long to drain).",
    "",
    groupKeepUpTable(groupRuns),
    "",
    groupTable(groupRuns),
    "",
    "Per post (deliveries: per delivery), over the group run with its drain:",
    "",
    markdownTable(
      [
        "system",
        "posts/s",
        "whole system CPU ms/post",
        "machine CPU ms/post",
        "machine CPU ms/delivery",
        "machine busy",
        "Redis cmds/post",
        "statements/post",
        "Handler_commit/post",
      ],
      groupRuns.map(({ system, report: g, result: r }) => [
        system,
        g.offeredRate,
        g.perPost.systemCpuMs,
        g.perPost.machineCpuMs,
        g.machineCpuMsPerDelivery,
        `${g.usage.machine.busyPercent} %`,
        cell(g.perPost.redisCommands, hasRedis(r)),
        cell(g.perPost.mysql.Questions, hasMysql(r)),
        cell(g.perPost.mysql.Handler_commit, hasMysql(r)),
      ]),
    ),
    "",
  );
}
if (ours.length > 0 && refs.length > 0) {
  lines.push(
    "## Ratios (shardchat ÷ reference)",
    "",
    markdownTable(
      [
        "shardchat",
        "reference",
        "max throughput (acked)",
        "p99 at half of the rate basis",
        "p99 flat out",
        "RSS per idle connection (as read)",
        "RSS per idle connection (after a full GC)",
        "server CPU per message (flat out)",
        "whole-system CPU per message (flat out)",
        "machine CPU per message (flat out)",
      ],
      ours.flatMap((o) =>
        refs.map((ref) => [
          o.system,
          ref.system,
          ratio(o.max.ackedPerSecond, ref.max.ackedPerSecond),
          ratio(atHalf(o)?.latencyMs.p99 ?? 0, atHalf(ref)?.latencyMs.p99 ?? 0),
          ratio(o.max.latencyMs.p99, ref.max.latencyMs.p99),
          ratio(o.connect.rssPerConnectionBytes, ref.connect.rssPerConnectionBytes),
          ratio(o.connect.rssRetainedPerConnectionBytes ?? 0, ref.connect.rssRetainedPerConnectionBytes ?? 0),
          ratio(o.max.serverCpuMsPerMessage, ref.max.serverCpuMsPerMessage),
          ratio(o.max.perMessage.systemCpuMs, ref.max.perMessage.systemCpuMs),
          ratio(o.max.perMessage.machineCpuMs, ref.max.perMessage.machineCpuMs),
        ]),
      ),
    ),
    "",
    "Throughput above 1 is better for shardchat; latency, memory and CPU below 1 are.",
    "",
  );
}
lines.push(
  `Correctness: ${
    allOk
      ? "every run delivered each message exactly once and in order per conversation"
      : failures.length > 0
        ? `FAILED: ${failures.map((f) => f.system).join(", ")} could not be measured${results.some((r) => runsOf(r).some((x) => !x.check.ok) || r.groups.some((g) => !g.check.ok)) ? ", and SOME RUN FAILED its check (see the check columns)" : ""}`
        : "SOME RUN FAILED its check (see the check columns)"
  }. Whole bench: ${Math.round((Date.now() - began) / 1000)} s.`,
  "",
  `![latency against offered rate](${stamp}.svg)`,
  "",
);
const markdown = lines.join("\n");
writeFileSync(join(dir, `${stamp}.md`), markdown);
writeFileSync(
  join(dir, `${stamp}.json`),
  `${JSON.stringify({ benchmark: "shardchat-vs-references", date, machine, settings, results, failures, ok: allOk }, null, 2)}\n`,
);
writeFileSync(
  join(dir, `${stamp}.svg`),
  latencyChart(
    "chat-1to1 p99 latency against offered rate",
    results.map((r) => ({
      name: `${r.key} p99`,
      points: [...r.atRates, r.max].map((x): [number, number] => [
        x.offeredRate === "max" ? x.ackedPerSecond : x.offeredRate,
        x.latencyMs.p99,
      ]),
    })),
  ),
);
console.log(markdown);
console.log(`written: bench/results/${stamp}.json, .md, .svg`);
process.exit(allOk ? 0 : 1);

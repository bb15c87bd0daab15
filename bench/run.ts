/**
 * `npm run bench`: shardchat against two references, same machine, same run, same load tool
 * and message sizes.
 *
 *   1. shardchat: the multi-shard stack (ops/stack/up.sh: 3 chat-node processes, 3 MariaDB
 *      shards, Redis Cluster), clients over WebSocket (binary frames);
 *   2. a plain `ws` relay in as many processes (no storage, peers on one process): the ceiling;
 *   3. Socket.IO + @socket.io/redis-adapter in as many processes (stores nothing).
 *
 * For each: chat-1to1 flat out (its max), then at fixed fractions of shardchat's max (the
 * latency-vs-rate curve), and N idle connections (memory per connection). shardchat also gets a
 * login storm and a group fan-out (one group of --group-members over the nodes). Writes bench/results/<date>.json, .md (the report with ratios) and .svg.
 *
 *   npm run bench -- [--pairs 20] [--window 8] [--seconds 8] [--connections 10000] [--nodes 3]
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type ChatLoadReport, runChatLoad } from "./load/chat.js";
import { type GroupLoadReport, startGroupLoad } from "./load/group.js";
import { chatTable, checkCell, groupTable, latencyChart, markdownTable } from "./load/report.js";
import { type ConnectReport, type LoginStormReport, runConnect, runLoginStorm } from "./load/scenarios.js";
import { cpuMsOf, ROOT, startSocketIo, startStack, startWsRelay, type Target } from "./load/targets.js";

const { values } = parseArgs({
  options: {
    pairs: { type: "string", default: "20" },
    window: { type: "string", default: "8" },
    seconds: { type: "string", default: "8" },
    size: { type: "string", default: "64" },
    connections: { type: "string", default: "5000" },
    logins: { type: "string", default: "30" },
    "group-members": { type: "string", default: "2000" },
    "group-rate": { type: "string", default: "2" },
    nodes: { type: "string", default: "3" },
    only: { type: "string", default: "shardchat,ws-relay,socketio" },
  },
});
const settings = {
  pairs: Number(values.pairs),
  windowPerSender: Number(values.window),
  secondsPerRun: Number(values.seconds),
  textChars: Number(values.size),
  idleConnections: Number(values.connections),
  logins: Number(values.logins),
  groupMembers: Number(values["group-members"]),
  groupPostsPerSecond: Number(values["group-rate"]),
  processes: Number(values.nodes),
  rateFractions: [0.25, 0.5, 0.75],
  transport: "WebSocket (shardchat: binary protobuf frames; references: JSON text frames)",
  loadWorkers: 2,
};
const only = new Set(values.only?.split(","));

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

interface SystemResult {
  system: string;
  max: ChatRun;
  atRates: ChatRun[];
  connect: ConnectReport;
  loginStorm?: LoginStormReport;
  group?: GroupLoadReport;
}

/** The chat report plus the CPU the system's connection-holding processes spent per message. */
type ChatRun = ChatLoadReport & { serverCpuMsPerMessage: number };

async function chat(target: Target, rate: number): Promise<ChatRun> {
  const pairs = await target.pairs(settings.pairs);
  const cpu = () => target.connectionPids().reduce((sum, pid) => sum + cpuMsOf(pid), 0);
  const cpuBefore = cpu();
  const report = await runChatLoad({
    pairs,
    rate,
    window: settings.windowPerSender,
    size: settings.textChars,
    workers: settings.loadWorkers,
    seconds: settings.secondsPerRun,
    onProgress: (p) =>
      progress(`${target.name}: ${rate || "max"} msg/s, ${(p.elapsedMs / 1000).toFixed(1)} s, ${p.acked} acked`),
  });
  const serverCpuMsPerMessage = Math.round(((cpu() - cpuBefore) / Math.max(1, report.acked)) * 1000) / 1000;
  if (process.stderr.isTTY) process.stderr.write("\n");
  log(
    `${rate || "max"} msg/s: acked ${report.ackedPerSecond}/s, p99 ${report.latencyMs.p99} ms, ${serverCpuMsPerMessage} server CPU ms/msg, check ${checkCell(report)}`,
  );
  return { ...report, serverCpuMsPerMessage };
}

let running: Target | undefined;
process.once("SIGINT", () => {
  log("interrupted: stopping what this run started");
  void (running?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
});

async function measure(
  start: () => Promise<Target>,
  rates: (max: ChatRun) => number[],
  withLogins: boolean,
): Promise<SystemResult> {
  const target = await start();
  running = target;
  log(`system: ${target.name}`);
  try {
    // Memory first, on fresh processes: after the chat runs their heaps hold garbage whose
    // collection would move RSS by more than the connections do.
    const connect = await runConnect(target, { count: settings.idleConnections, onProgress: progress });
    if (process.stderr.isTTY) process.stderr.write("\n");
    log(
      `idle connections: ${connect.held}/${connect.requested} held, ${connect.rssPerConnectionBytes} bytes RSS each, ${connect.connectsPerSecond} connects/s`,
    );
    const max = await chat(target, 0);
    const atRates: ChatRun[] = [];
    for (const rate of rates(max)) atRates.push(await chat(target, rate));
    const loginStorm = withLogins ? await runLoginStorm(target, { users: settings.logins }) : undefined;
    if (loginStorm) log(`login storm: ${loginStorm.loginsPerSecond} logins/s, p99 ${loginStorm.loginLatencyMs.p99} ms`);
    let group: GroupLoadReport | undefined;
    if (withLogins && settings.groupMembers > 1) {
      const load = await startGroupLoad({
        members: await target.tickets(settings.groupMembers),
        rate: settings.groupPostsPerSecond,
        size: settings.textChars,
        onProgress: (p) => progress(`group-fanout: ${p.sent} posted, ${p.delivered} delivered`),
      });
      await new Promise((r) => setTimeout(r, settings.secondsPerRun * 1000));
      group = await load.stop();
      if (process.stderr.isTTY) process.stderr.write("\n");
      log(
        `group of ${group.members}: ${group.deliveriesPerSecond} deliveries/s, p99 ${group.latencyMs.p99} ms, check ${checkCell(group)}`,
      );
    }
    return {
      system: target.name,
      max,
      atRates,
      connect,
      ...(loginStorm ? { loginStorm } : {}),
      ...(group ? { group } : {}),
    };
  } finally {
    await target.stop();
    running = undefined;
  }
}

const began = Date.now();
const results: SystemResult[] = [];
let shardchatMax = 0;
const fractionsOf = (max: number) => settings.rateFractions.map((f) => Math.max(1, Math.round(max * f)));
if (only.has("shardchat")) {
  const r = await measure(
    () => startStack({ chatNodes: settings.processes, transport: "ws" }),
    (max) => fractionsOf(max.ackedPerSecond),
    true,
  );
  shardchatMax = r.max.ackedPerSecond;
  results.push(r);
}
// The references at the same offered rates as shardchat, so latencies compare at equal load.
const sameRates = () => (shardchatMax > 0 ? fractionsOf(shardchatMax) : []);
if (only.has("ws-relay")) results.push(await measure(() => startWsRelay(settings.processes), sameRates, false));
if (only.has("socketio")) results.push(await measure(() => startSocketIo(settings.processes), sameRates, false));

// --- the report --------------------------------------------------------------------------------
const [ours, ...refs] = results;
const atHalf = (r: SystemResult) => r.atRates[settings.rateFractions.indexOf(0.5)];
const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : "n/a");
const allOk = results.every(
  (r) => r.max.check.ok && r.atRates.every((x) => x.check.ok) && r.connect.ok && (r.group?.check.ok ?? true),
);
const date = new Date().toISOString();
const stamp = date.replace(/[:.]/g, "-");
const dir = join(ROOT, "bench/results");
mkdirSync(dir, { recursive: true });

const lines: string[] = [
  `# shardchat benchmark, ${date}`,
  "",
  `Machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.platform}; Node ${machine.node}; ${machine.mariadb}; ${machine.redis}. Load average (1, 5, 15 min) at start: ${machine.loadAverageAtStart.join(", ")}, at the end: ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(
      ", ",
    )} (other work on the machine competes with every figure below). The load generator runs on the same machine (${settings.loadWorkers} worker threads).`,
  "",
  `Settings: ${settings.pairs} pairs (both members send), ${settings.windowPerSender} sends in flight per sender when flat out, ${settings.textChars}-character texts, ${settings.secondsPerRun} s per run, ${settings.processes} processes per system, ${settings.idleConnections} idle connections; ${settings.transport}. Pairs span two nodes where the system routes between nodes (shardchat, Socket.IO), one process for the relay (it cannot route).`,
  "",
  "## Chat 1:1",
  "",
  chatTable(results.flatMap((r) => [r.max, ...r.atRates].map((report) => ({ system: r.system, report })))),
  "",
  "Server CPU per message: CPU time (user + system) of the processes holding the connections (shardchat: its chat nodes, not MariaDB or Redis) over the run, divided by the messages acked; it holds up better than throughput when other work shares the machine.",
  "",
  markdownTable(
    ["system", ...(results[0]?.atRates.map((r) => `${r.offeredRate} msg/s`) ?? []), "flat out"].map(String),
    results.map((r) => [r.system, ...[...r.atRates, r.max].map((x) => `${x.serverCpuMsPerMessage} ms`)]),
  ),
  "",
  "## Idle connections",
  "",
  markdownTable(
    ["system", "held", "connects/s", "RSS per connection (bytes)"],
    results.map((r) => [
      r.system,
      `${r.connect.held}/${r.connect.requested}`,
      r.connect.connectsPerSecond,
      r.connect.rssPerConnectionBytes,
    ]),
  ),
  "",
];
if (ours?.loginStorm) {
  const l = ours.loginStorm;
  lines.push(
    "## Login storm (shardchat)",
    "",
    markdownTable(
      ["users", "logins/s", "login p50 ms", "login p99 ms", "connects/s", "failed"],
      [[l.users, l.loginsPerSecond, l.loginLatencyMs.p50, l.loginLatencyMs.p99, l.connectsPerSecond, l.failed]],
    ),
    "",
  );
}
if (ours?.group) {
  lines.push("## Group fan-out (shardchat)", "", groupTable([{ system: ours.system, report: ours.group }]), "");
}
if (ours && refs.length > 0) {
  lines.push(
    "## Ratios (shardchat ÷ reference)",
    "",
    markdownTable(
      [
        "reference",
        "max throughput (acked)",
        "p99 at half of shardchat's max",
        "p99 flat out",
        "RSS per idle connection",
        "server CPU per message (flat out)",
      ],
      refs.map((ref) => [
        ref.system,
        ratio(ours.max.ackedPerSecond, ref.max.ackedPerSecond),
        ratio(atHalf(ours)?.latencyMs.p99 ?? 0, atHalf(ref)?.latencyMs.p99 ?? 0),
        ratio(ours.max.latencyMs.p99, ref.max.latencyMs.p99),
        ratio(ours.connect.rssPerConnectionBytes, ref.connect.rssPerConnectionBytes),
        ratio(ours.max.serverCpuMsPerMessage, ref.max.serverCpuMsPerMessage),
      ]),
    ),
    "",
    "Throughput above 1 is better for shardchat; latency and memory below 1 are.",
    "",
  );
}
lines.push(
  `Correctness: ${allOk ? "every run delivered each message exactly once and in order per conversation" : "SOME RUN FAILED its check (see the check column)"}. Whole bench: ${Math.round((Date.now() - began) / 1000)} s.`,
  "",
  `![latency against offered rate](${stamp}.svg)`,
  "",
);
const markdown = lines.join("\n");
writeFileSync(join(dir, `${stamp}.md`), markdown);
writeFileSync(
  join(dir, `${stamp}.json`),
  `${JSON.stringify({ benchmark: "shardchat-vs-references", date, machine, settings, results, ok: allOk }, null, 2)}\n`,
);
writeFileSync(
  join(dir, `${stamp}.svg`),
  latencyChart(
    "chat-1to1 p99 latency against offered rate",
    results.map((r) => ({
      name: `${r.system.split(" (")[0]} p99`,
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

/**
 * A soak run of the local stack: `npm run soak [-- --minutes 30 --rate 0 --connections 10000
 * --pairs 20 --probe-seconds 8 --wait-seconds 0]`.
 *
 * Starts the stack as `npm run bench` does (ops/stack/up.sh: 3 chat nodes, 3 MariaDB shards, a
 * Redis Cluster of its own), holds --connections idle, heart-beating WebSocket connections for
 * the whole run, and offers 1:1 chat at --rate msg/s (0: half of the flat-out throughput,
 * measured first for --probe-seconds, after --wait-seconds with the connections held). Each
 * minute is one chat run of its own, with its own exactly-once, in-order check; after it, the RSS
 * of every process of the stack (chat nodes, gate, status, verify, each mariadbd and
 * redis-server), the minute's p99 and its errors.
 *
 * The report (printed, and bench/results/soak-<time>.md and .json with the machine and the
 * settings) has a row per minute and, per process, the RSS of the first and the last minute and
 * the growth between them. Exits 1 when a minute lost, repeated or reordered a message, or had
 * a send error.
 */
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { type ChatLoadReport, runChatLoad } from "./load/chat.js";
import { markdownTable, writeResults } from "./load/report.js";
import { holdConnections } from "./load/scenarios.js";
import { rssOf, startStack } from "./load/targets.js";
import { UsageMeter } from "./load/usage.js";
import { exitWithUsage } from "./usage.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "30" },
    rate: { type: "string", default: "0" },
    connections: { type: "string", default: "10000" },
    pairs: { type: "string", default: "20" },
    "probe-seconds": { type: "string", default: "8" },
    "wait-seconds": { type: "string", default: "0" },
    out: { type: "string", default: "bench/results" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) exitWithUsage(import.meta.url);
const count = (name: keyof typeof values): number => {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number >= 0`);
  return n;
};
const settings = {
  minutes: count("minutes"),
  rate: count("rate"),
  connections: count("connections"),
  pairs: count("pairs"),
  probeSeconds: count("probe-seconds"),
  waitSeconds: count("wait-seconds"),
};
const log = (line: string) => console.log(`[soak] ${line}`);

const target = await startStack({ transport: "ws" });
process.once("SIGINT", () => {
  log("interrupted: stopping the stack");
  void target.stop().finally(() => process.exit(130));
});
const meter = await UsageMeter.open({
  processes: target.processes?.() ?? [],
  redis: target.stores?.redis ?? [],
  mysql: target.stores?.mysql ?? [],
});
// The stack's own processes (services, MariaDB, Redis), as the meter found them.
const processes = meter.processes;
await meter.close();

interface Minute {
  minute: number;
  report: ChatLoadReport;
  rssMb: number[];
}
const minutes: Minute[] = [];
let rate = settings.rate;
let idle: Awaited<ReturnType<typeof holdConnections>> | undefined;
try {
  idle = await holdConnections(target, settings.connections, (s) => process.stdout.write(`\r${s}   `));
  process.stdout.write("\n");
  log(`${idle.held} idle connections held, ${idle.failed} failed to open`);
  // Idle connections only settle into their steady work (heartbeats, route renewals) after a while.
  await sleep(settings.waitSeconds * 1000);
  // New users for every run, the probe's included: a run's users could be handed pushes their
  // sessions of the run before left unacked (at-least-once; the SDK drops them by seq), which
  // a new run's checker, starting from #1, would count as repeated and out of order.
  if (rate === 0) {
    const probe = await runChatLoad({ pairs: await target.pairs(settings.pairs), seconds: settings.probeSeconds });
    rate = Math.max(1, Math.round(probe.ackedPerSecond / 2));
    log(`flat out: ${probe.ackedPerSecond} msg/s; the soak offers half, ${rate} msg/s`);
  }
  for (let minute = 1; minute <= settings.minutes; minute++) {
    const report = await runChatLoad({ pairs: await target.pairs(settings.pairs), rate, seconds: 60 });
    const rssMb = processes.map((p) => Math.round((rssOfOr0(p.pid) / 2 ** 20) * 10) / 10);
    minutes.push({ minute, report, rssMb });
    log(
      `minute ${minute}: ${report.ackedPerSecond} msg/s acked, p99 ${report.latencyMs.p99} ms, ${report.sendErrors} errors, check ${report.check.ok ? "ok" : "FAILED"}, RSS ${rssMb.reduce((a, b) => a + b, 0).toFixed(0)} MB in all`,
    );
  }
} finally {
  await idle?.close();
  await target.stop();
}

const first = minutes[0];
const last = minutes.at(-1);
const failed = minutes.filter((m) => !m.report.check.ok || m.report.sendErrors > 0);
const report = [
  `# shardchat soak, ${new Date().toISOString()}`,
  "",
  `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, linux ${os.release()}, Node ${process.version}; the stack and this load generator on this one machine; load average at the end ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")}.`,
  "",
  `Settings: ${target.name}; ${idle?.held ?? 0} idle WebSocket connections held throughout (${idle?.failed ?? 0} failed to open); ${settings.pairs} pairs chatting 1:1 at ${rate} msg/s${settings.rate === 0 ? " (half of the flat-out throughput measured first)" : ""}; ${minutes.length} one-minute runs, each with its own exactly-once, in-order check.`,
  "",
  "## Per minute",
  "",
  markdownTable(
    ["minute", "acked msg/s", "p50 ms", "p99 ms", "max ms", "send errors", "check", "RSS of the stack, MB"],
    minutes.map((m) => [
      m.minute,
      m.report.ackedPerSecond,
      m.report.latencyMs.p50,
      m.report.latencyMs.p99,
      m.report.latencyMs.max,
      m.report.sendErrors,
      m.report.check.ok ? `ok (${m.report.acked} once, in order)` : "FAILED",
      m.rssMb.reduce((a, b) => a + b, 0).toFixed(1),
    ]),
  ),
  "",
  "## RSS per process",
  "",
  markdownTable(
    ["process", "pid", "after minute 1, MB", `after minute ${last?.minute ?? 0}, MB`, "growth MB"],
    processes.map((p, i) => {
      const a = first?.rssMb[i] ?? 0;
      const b = last?.rssMb[i] ?? 0;
      return [p.role, p.pid, a, b, (b - a).toFixed(1)];
    }),
  ),
  "",
  failed.length === 0
    ? "Every minute delivered every acked message exactly once, in order, with no send error."
    : `Minutes with a lost, repeated or reordered message or a send error: ${failed.map((m) => m.minute).join(", ")}.`,
  "",
].join("\n");
console.log(report);
const written = writeResults(values.out as string, "soak-", report, {
  settings: { ...settings, rate },
  processes,
  minutes,
});
log(`written: ${written}`);
if (failed.length > 0 || minutes.length < settings.minutes) process.exitCode = 1;

function rssOfOr0(pid: number): number {
  try {
    return rssOf(pid);
  } catch {
    return 0;
  }
}

/**
 * The load tool. `npm run load -- <scenario> [options]` (bench/load/run.sh raises the file
 * limit first, then runs this).
 *
 *   connect      --count 10000 [--concurrency 64] [--per-address 20000]   idle connections with heartbeats
 *   login-storm  --users 200 [--concurrency 32]          gate logins, then connect to the node named
 *   chat-1to1    --pairs 20 --rate max|N[,N...] --seconds 10 [--window 8] [--size 64]
 *   group-fanout --members 200 --senders 1 --rate 2 --seconds 10   one group over the nodes
 *   users        --count 1000 --file k6/users.json      users with a known password for the k6
 *                scripts, made in the storage the environment names (as for the server itself)
 *
 * Common: --target embedded|embedded-sqlite|stack|ws-relay|socketio (default embedded: MySQL +
 * Redis; embedded-sqlite: npm start's defaults, one chat node, a temporary DATA_DIR), --nodes 3 (chat nodes,
 * or reference processes), --transport tcp|ws|ws-json (shardchat), --workers 2, --out <dir>,
 * --profile <dir> (embedded: the server writes a CPU profile there, for `node --cpu-prof`).
 * Writes <out>/<time>-<scenario>.json and .md (and .svg for chat-1to1: latency against offered
 * rate); exits 1 when a run's exactly-once, in-order check fails or connections were refused.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config/load.js";
import { type ChatLoadReport, startChatLoad } from "./chat.js";
import { startGroupLoad } from "./group.js";
import { chatTable, groupTable, latencyChart, markdownTable } from "./report.js";
import { runConnect, runLoginStorm } from "./scenarios.js";
import {
  LOAD_PASSWORD,
  ROOT,
  type ShardchatTransport,
  ShardchatUsers,
  startEmbedded,
  startEmbeddedSqlite,
  startSocketIo,
  startStack,
  startWsRelay,
  type Target,
} from "./targets.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: "string", default: "embedded" },
    nodes: { type: "string", default: "3" },
    transport: { type: "string", default: "tcp" },
    workers: { type: "string", default: "2" },
    out: { type: "string", default: join(ROOT, "bench/results/load") },
    count: { type: "string", default: "1000" },
    users: { type: "string", default: "200" },
    concurrency: { type: "string" },
    pairs: { type: "string", default: "20" },
    members: { type: "string", default: "200" },
    senders: { type: "string", default: "1" },
    rate: { type: "string", default: "max" },
    seconds: { type: "string", default: "10" },
    window: { type: "string", default: "8" },
    size: { type: "string", default: "64" },
    profile: { type: "string" },
    file: { type: "string", default: "k6/users.json" },
    "per-address": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
const scenario = positionals[0];
const scenarios = ["connect", "login-storm", "chat-1to1", "group-fanout", "users"];
if (values.help || !scenario || !scenarios.includes(scenario)) {
  console.log(
    "usage: npm run load -- <connect|login-storm|chat-1to1|group-fanout|users> [--target embedded|embedded-sqlite|stack|ws-relay|socketio] [options]\n(see bench/load/cli.ts)",
  );
  process.exit(values.help ? 0 : 2);
}

if (scenario === "users") {
  // The users live in whatever storage the server runs on: the same settings, from the environment.
  const made = await new ShardchatUsers(loadConfig(), "", "tcp").logins(int("count", values.count));
  writeFileSync(values.file, `${JSON.stringify({ users: made }, null, 1)}\n`);
  console.log(`${made.length} users (password ${LOAD_PASSWORD}) written to ${values.file}`);
  process.exit(0);
}

function int(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a whole number, got ${v}`);
    process.exit(2);
  }
  return n;
}

const nodes = int("nodes", values.nodes);
const workers = int("workers", values.workers);
const transport = values.transport as ShardchatTransport;
if (!["tcp", "ws", "ws-json"].includes(transport)) {
  console.error("--transport is tcp, ws or ws-json");
  process.exit(2);
}

async function startTarget(): Promise<Target> {
  switch (values.target) {
    case "embedded":
      // --profile <dir>: the server process writes a V8 CPU profile there when it stops.
      return startEmbedded({
        chatNodes: nodes,
        transport,
        ...(values.profile ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] } : {}),
      });
    case "embedded-sqlite":
      return startEmbeddedSqlite({
        transport,
        ...(values.profile ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] } : {}),
      });
    case "stack":
      return startStack({ chatNodes: nodes, transport });
    case "ws-relay":
      return startWsRelay(nodes);
    case "socketio":
      return startSocketIo(nodes);
    default:
      console.error(`unknown --target ${values.target}`);
      process.exit(2);
  }
}

/** One progress line, rewritten in place on a terminal. */
function progress(line: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
  else process.stderr.write(`${line}\n`);
}

const stamp = new Date().toISOString().replace(/[:.]/g, "-");
mkdirSync(values.out, { recursive: true });
const base = join(values.out, `${stamp}-${scenario}`);
let ok = true;
const target = await startTarget();
console.error(`target: ${target.name}`);
process.once("SIGINT", () => {
  console.error("\ninterrupted: stopping the target");
  void target.stop().finally(() => process.exit(130));
});
try {
  if (scenario === "connect") {
    const count = int("count", values.count);
    const report = await runConnect(target, {
      count,
      workers,
      concurrency: values.concurrency ? int("concurrency", values.concurrency) : 64,
      ...(values["per-address"] ? { perAddress: int("per-address", values["per-address"]) } : {}),
      onProgress: progress,
    });
    ok = report.ok;
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(
      `${base}.md`,
      `${markdownTable(
        [
          "target",
          "held",
          "failed",
          "connects/s",
          "RSS per connection (bytes)",
          "after a full GC (bytes)",
          "source addresses",
        ],
        [
          [
            report.target,
            `${report.held}/${report.requested}`,
            report.failed,
            report.connectsPerSecond,
            report.rssPerConnectionBytes,
            report.rssRetainedPerConnectionBytes ?? "n/a",
            report.sourceAddresses.length,
          ],
        ],
      )}\n`,
    );
  } else if (scenario === "login-storm") {
    const report = await runLoginStorm(target, {
      users: int("users", values.users),
      concurrency: values.concurrency ? int("concurrency", values.concurrency) : 32,
      onProgress: progress,
    });
    ok = report.ok;
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(
      `${base}.md`,
      `${markdownTable(
        ["target", "logged in", "connected", "failed", "logins/s", "login p50 ms", "login p99 ms", "connects/s"],
        [
          [
            report.target,
            report.loggedIn,
            report.connected,
            report.failed,
            report.loginsPerSecond,
            report.loginLatencyMs.p50,
            report.loginLatencyMs.p99,
            report.connectsPerSecond,
          ],
        ],
      )}\n`,
    );
  } else if (scenario === "group-fanout") {
    const load = await startGroupLoad({
      members: await target.tickets(int("members", values.members)),
      senders: int("senders", values.senders),
      rate: values.rate === "max" ? 2 : int("rate", values.rate),
      size: int("size", values.size),
      workers,
      onProgress: (p) =>
        progress(
          `group-fanout: ${(p.elapsedMs / 1000).toFixed(1)} s, ${p.sent} posted, ${p.delivered} delivered, ${p.errors} errors`,
        ),
    });
    await new Promise((r) => setTimeout(r, int("seconds", values.seconds) * 1000));
    const report = await load.stop();
    ok = report.check.ok;
    writeFileSync(`${base}.json`, `${JSON.stringify({ target: target.name, report }, null, 2)}\n`);
    writeFileSync(`${base}.md`, `${groupTable([{ system: target.name, report }])}\n`);
  } else {
    // "max" (or 0) is flat out: `window` sends in flight per sender.
    const rates = (values.rate ?? "max").split(",").map((r) => (r === "max" ? 0 : int("rate", r)));
    const pairs = await target.pairs(int("pairs", values.pairs));
    const seconds = int("seconds", values.seconds);
    const reports: ChatLoadReport[] = [];
    for (const rate of rates) {
      const load = await startChatLoad({
        pairs,
        rate,
        window: int("window", values.window),
        size: int("size", values.size),
        workers,
        onProgress: (p) =>
          progress(
            `chat-1to1 ${rate || "max"} msg/s: ${(p.elapsedMs / 1000).toFixed(1)} s, ${p.acked} acked, ${p.delivered} delivered, ${p.errors} errors`,
          ),
      });
      await new Promise((r) => setTimeout(r, seconds * 1000));
      const report = await load.stop();
      reports.push(report);
      ok &&= report.check.ok;
    }
    writeFileSync(`${base}.json`, `${JSON.stringify({ target: target.name, runs: reports }, null, 2)}\n`);
    writeFileSync(`${base}.md`, `${chatTable(reports.map((report) => ({ system: target.name, report })))}\n`);
    const point = (r: ChatLoadReport, v: number): [number, number] => [
      r.offeredRate === "max" ? r.ackedPerSecond : r.offeredRate,
      v,
    ];
    writeFileSync(
      `${base}.svg`,
      latencyChart(`chat-1to1 latency, ${target.name}`, [
        { name: "p50", points: reports.map((r) => point(r, r.latencyMs.p50)) },
        { name: "p99", points: reports.map((r) => point(r, r.latencyMs.p99)) },
      ]),
    );
  }
} finally {
  if (process.stderr.isTTY) process.stderr.write("\n");
  await target.stop();
}
console.log((await import("node:fs")).readFileSync(`${base}.md`, "utf8"));
console.log(`written: ${base}.json, .md${scenario === "chat-1to1" ? ", .svg" : ""}`);
if (!ok) console.error("FAILED: see the check column (or connections held) above");
process.exit(ok ? 0 : 1);

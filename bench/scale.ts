/**
 * Scale-out at realistic size: `npm run bench:scale [-- --only rebalance,nodes]`.
 *
 *  rebalance (bench/scale/rebalance.ts): seeds the stack's three MariaDB shards through the bulk
 *    path, then moves a third of the slots to a 4th instance while writers append.
 *    [--messages 1000000 --users 10000 --groups 100 --writers 100 --rate 200 --batch-slots 64
 *    --copy-rows 1000 --max-rows-per-second 0 --baseline-seconds 15 --buffer-pool-mb 1024 --keep]
 *  nodes (bench/scale/nodes.ts): holds --connected users on the stack's chat nodes while
 *    --chatting of them send --chat-rate msg/s, and adds a chat node, drains one and kills one.
 *    [--connected 10000 --chatting 1000 --chat-rate 200]
 *
 * Prints the report and writes bench/results/scale-<time>.md and .json with the machine and the
 * settings. Exits 1 when a part's checks failed (a message lost or repeated, a user not back).
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { loadConfig } from "../src/config/load.js";
import { writeResults } from "./load/report.js";
import { nodeScenarios } from "./scale/nodes.js";
import { rebalanceScenario, type ScalePart } from "./scale/rebalance.js";
import { exitWithUsage } from "./usage.js";

const PARTS = ["rebalance", "nodes"] as const;

const { values } = parseArgs({
  options: {
    only: { type: "string", default: PARTS.join(",") },
    messages: { type: "string", default: "1000000" },
    users: { type: "string", default: "10000" },
    groups: { type: "string", default: "100" },
    writers: { type: "string", default: "100" },
    rate: { type: "string", default: "200" },
    "batch-slots": { type: "string", default: "" },
    "copy-rows": { type: "string", default: "" },
    "max-rows-per-second": { type: "string", default: "0" },
    "baseline-seconds": { type: "string", default: "15" },
    "buffer-pool-mb": { type: "string", default: "1024" },
    connected: { type: "string", default: "10000" },
    chatting: { type: "string", default: "1000" },
    "chat-rate": { type: "string", default: "200" },
    out: { type: "string", default: "bench/results" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) exitWithUsage(import.meta.url);
const number = (name: keyof typeof values, fallback?: number): number => {
  const raw = values[name];
  const n = raw === "" || raw === undefined ? Number(fallback) : Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number >= 0`);
  return n;
};
const only = new Set((values.only as string).split(",").map((p) => p.trim()));
for (const part of only)
  if (!(PARTS as readonly string[]).includes(part))
    throw new Error(`--only: unknown part ${part} (${PARTS.join(", ")})`);
const defaults = loadConfig({});

const parts: [string, ScalePart][] = [];
if (only.has("rebalance"))
  parts.push([
    "rebalance",
    await rebalanceScenario({
      messages: number("messages"),
      users: number("users"),
      groups: number("groups"),
      writers: number("writers"),
      rate: number("rate"),
      batchSlots: number("batch-slots", defaults.REBALANCE_BATCH_SLOTS),
      copyRows: number("copy-rows", defaults.REBALANCE_COPY_ROWS),
      maxRowsPerSecond: number("max-rows-per-second"),
      baselineSeconds: number("baseline-seconds"),
      bufferPoolMb: number("buffer-pool-mb"),
      keep: values.keep === true,
    }),
  ]);
if (only.has("nodes"))
  parts.push([
    "nodes",
    await nodeScenarios({
      connected: number("connected"),
      chatting: number("chatting"),
      chatRate: number("chat-rate"),
    }),
  ]);

const report = [
  `# shardchat scale benchmark, ${new Date().toISOString()}`,
  "",
  `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, linux ${os.release()}, Node ${process.version}; the whole stack (MariaDB shards, Redis Cluster, services) and this benchmark on this one machine; load average at the end ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")}.`,
  "",
  ...parts.map(([, part]) => part.markdown),
].join("\n");
console.log(report);
const written = writeResults(
  values.out as string,
  "scale-",
  report,
  Object.fromEntries(parts.map(([name, part]) => [name, part.json])),
);
console.log(`[scale] written: ${written}`);
if (parts.some(([, p]) => !p.ok)) process.exitCode = 1;

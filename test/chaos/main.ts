import { join } from "node:path";
import { ROOT } from "../helpers/processes.js";
import { reportMarkdown, runChaos, writeReport } from "./chaos.js";

/**
 * `npm run chaos`: the full fault-injection run on the local multi-shard stack; writes
 * docs/chaos/report.md and report.json. Options: --pairs N --rate N (messages/s per sender),
 * --only fault,fault.
 */
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

const only = arg("only", "");
const report = await runChaos({
  pairs: Number(arg("pairs", "60")),
  ratePerSender: Number(arg("rate", "40")),
  mysqlStopMs: 10_000,
  holdMs: 10_000,
  delayMs: 300,
  warmupMs: 3000,
  ...(only ? { only: only.split(",") } : {}),
  log: (line) => console.log(line),
});
const dir = join(ROOT, "docs/chaos");
writeReport(report, dir);
console.log(reportMarkdown(report));
console.log(`written to ${dir}`);
process.exit(report.ok ? 0 : 1);

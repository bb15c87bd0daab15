import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../src/config/load.js";
import { createLogger } from "../src/log/logger.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { slotCounts } from "../src/storage/sharded/shard-map.js";
import { configuredInstances, migrateShards, readShardMap } from "../src/storage/sharded/shards.js";
import { describePlan, PlanRefused, type PlanRequest, planRebalance, Rebalancer } from "./rebalance.js";

const USAGE = `npm run rebalance -- <what> [--dry-run]
  --add ID=URL [--count N | --share A/B]   move N slots (default: an even share) to a new instance
  --retire ID [--to ID]                    move every slot off an instance
  --resume                                 finish the interrupted rebalance
  --abort JOB                              undo a rebalance's slots that were not switched yet
  --status                                 the shard map and the unfinished rebalance, if any
Reads MYSQL_SHARDS (the first is the control instance) and the REBALANCE_* settings.`;

const { values } = parseArgs({
  options: {
    add: { type: "string" },
    count: { type: "string" },
    share: { type: "string" },
    retire: { type: "string", multiple: true },
    to: { type: "string" },
    resume: { type: "boolean" },
    abort: { type: "string" },
    status: { type: "boolean" },
    "dry-run": { type: "boolean" },
    help: { type: "boolean" },
  },
  allowPositionals: true,
});

function fail(message: string, code = 2): never {
  console.error(message);
  process.exit(code);
}

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) fail(err.message);
  throw err;
}
const log = createLogger("rebalance", config.LOG_LEVEL);
const configured = configuredInstances(config);
const control = createPool({ MYSQL_URL: configured[0]?.url ?? config.MYSQL_URL, MYSQL_POOL_SIZE: 2 });
const rebalancer = new Rebalancer(control, {
  batchSlots: config.REBALANCE_BATCH_SLOTS,
  copyRows: config.REBALANCE_COPY_ROWS,
  maxRowsPerSecond: config.REBALANCE_MAX_ROWS_PER_SECOND,
  cleanupGraceMs: 2 * config.SHARD_MAP_REFRESH_MS,
  urls: new Map(configured.map((i) => [i.id, i.url])),
  credentialsFrom: configured[0]?.url ?? config.MYSQL_URL,
  log,
  onProgress: (p) =>
    console.log(
      `[rebalance] ${p.phase}: ${p.slotsDone}/${p.slotsTotal} slots switched, ${p.rows} rows copied, ` +
        `${p.rowsPerSecond} rows/s, ETA ${p.etaSeconds === null ? "?" : `${p.etaSeconds}s`}`,
    ),
});

function count(map: { slots: number; instances: unknown[] }): number | undefined {
  if (values.count !== undefined) {
    const n = Number(values.count);
    if (!Number.isInteger(n) || n < 1) fail(`--count must be a positive integer, got ${values.count}`);
    return n;
  }
  if (values.share !== undefined) {
    const [a, b] = values.share.split("/").map(Number);
    if (!a || !b || a > b) fail(`--share must look like 1/3, got ${values.share}`);
    return Math.round((map.slots * a) / b);
  }
  return undefined;
}

try {
  await migrateShards(configured.slice(0, 1), log);
  const map = await readShardMap(control);
  if (!map) fail("no shard map on the control instance: start a node (or the stack) once first");
  if (values.status) {
    console.log(`shard map v${map.version}: ${JSON.stringify(Object.fromEntries(slotCounts(map)))}`);
    const open = await rebalancer.openJob();
    console.log(
      open ? `unfinished: ${open} ${JSON.stringify(await rebalancer.stepCounts(open))}` : "no unfinished rebalance",
    );
  } else if (values.abort) {
    const result = await rebalancer.abort(values.abort);
    console.log(`[rebalance] aborted ${values.abort}: ${result.reverted} slots reverted, ${result.kept} already moved`);
  } else if (values.resume) {
    const job = (await rebalancer.openJob()) ?? fail("no unfinished rebalance");
    await rebalancer.run(job);
  } else if (values.add || values.retire) {
    const request: PlanRequest = { retire: values.retire, to: values.to };
    if (values.add) {
      const at = values.add.indexOf("=");
      const id = at > 0 ? values.add.slice(0, at) : values.add;
      const url = at > 0 ? values.add.slice(at + 1) : configured.find((i) => i.id === id)?.url;
      if (!url) fail(`--add ${id}: give its URL (ID=URL) or list it in MYSQL_SHARDS`);
      request.add = { id, url };
      request.count = count(map);
    }
    const plan = planRebalance(map, request);
    console.log(describePlan(map, plan));
    if (values["dry-run"]) {
      console.log("dry run: nothing changed");
    } else {
      await rebalancer.start(plan);
      await rebalancer.run(plan.jobId);
    }
  } else {
    fail(USAGE);
  }
} catch (err) {
  if (err instanceof PlanRefused) {
    console.error(`[rebalance] refused: ${err.message}`);
    process.exitCode = 3;
  } else {
    log.error({ err }, "rebalance stopped; rerun with --resume to continue");
    process.exitCode = 1;
  }
} finally {
  await rebalancer.close();
  await control.end();
}

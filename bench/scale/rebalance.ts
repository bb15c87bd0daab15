/**
 * The rebalance part of `npm run bench:scale` (bench/scale.ts), on the local stack's three
 * MariaDB shards (ops/stack/up.sh --infra), in a database of its own:
 *  1. seeds the messages through the storage's bulk path (ShardedBulkImporter, as
 *     `npm run seed-data` does), 20 % of them to groups;
 *  2. starts writers appending 1:1 messages through the sharded message store (the chat nodes'
 *     own storage path, fence retries included) at a steady rate, and measures the append
 *     latency before the move;
 *  3. adds a 4th MariaDB instance (ops/add-mysql-instance.sh) and moves a third of the slots to it
 *     with the rebalancer (REBALANCE_* as given), while the writers go on;
 *  4. checks that every acked append is stored exactly once, on the instance that owns its slot,
 *     and reports rows/s, the time of each phase and the latency before and during the move.
 * The database and the added instance are removed at the end (unless keep).
 *
 * The stack's instances run with a 64 MB buffer pool (four of them share a test machine); for the
 * run each gets bufferPoolMb (as a production instance would hold its working set), and the old
 * size back at the end.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import mysql, { type RowDataPacket } from "mysql2/promise";
import { type Progress, planRebalance, Rebalancer, type RunSummary } from "../../sharding/rebalance.js";
import { loadConfig } from "../../src/config/load.js";
import { convIdForPair, type Uid } from "../../src/ids/identifiers.js";
import { Snowflake } from "../../src/ids/snowflake.js";
import { createPool } from "../../src/storage/mysql/pool.js";
import { seedData } from "../../src/storage/seed-data.js";
import { ShardedBulkImporter } from "../../src/storage/sharded/bulk-import.js";
import { ShardedGroupStore } from "../../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../../src/storage/sharded/message-store.js";
import { instanceOf, slotCounts, slotOf } from "../../src/storage/sharded/shard-map.js";
import { configuredInstances, migrateShards, readShardMap, Shards } from "../../src/storage/sharded/shards.js";
import { ShardedUserStore } from "../../src/storage/sharded/user-store.js";
import { preferredPort } from "../../test/helpers/ports.js";
import { ROOT } from "../../test/helpers/processes.js";
import { stackInfraUp } from "../../test/helpers/stack.js";
import { storedMessageCounts } from "../../test/helpers/stored-messages.js";
import { markdownTable, percentile } from "../load/report.js";
import { mysqlAtOf, type Usage, UsageMeter, type UsageSnapshot } from "../load/usage.js";

const run = promisify(execFile);
const DB = "shardchat_scale_bench";
const log = (line: string) => console.log(`[scale] ${line}`);

export interface RebalanceSettings {
  messages: number;
  users: number;
  groups: number;
  writers: number;
  rate: number;
  batchSlots: number;
  copyRows: number;
  maxRowsPerSecond: number;
  baselineSeconds: number;
  bufferPoolMb: number;
  /** Leave the database and the added instance in place. */
  keep: boolean;
}

/** A part of the scale report: its markdown section, its figures, and whether its checks held. */
export interface ScalePart {
  markdown: string;
  json: unknown;
  ok: boolean;
}

/**
 * Seeds the stack's shards, appends through the sharded store at a steady rate, adds a 4th
 * MariaDB and moves a third of the slots to it (see bench/scale.ts).
 */
export async function rebalanceScenario(settings: RebalanceSettings): Promise<ScalePart> {
  const defaults = loadConfig({});

  // --- the stack's shards, a fresh database on each --------------------------------------------

  const infra = await stackInfraUp();
  const urls = infra.mysqlPorts.map((port) => `mysql://root@127.0.0.1:${port}/${DB}`);
  await dropDatabase(urls);
  const poolSizes = new Map<string, number>();
  for (const url of urls) poolSizes.set(url, await setBufferPool(url, settings.bufferPoolMb));
  const config = {
    ...defaults,
    STORAGE_BACKEND: "mysql" as const,
    MYSQL_URL: urls[0] as string,
    MYSQL_SHARDS: urls.join(","),
  };
  await migrateShards(configuredInstances(config));
  const shards = await Shards.open(config);
  const messages = new ShardedMessageStore(shards, {
    batchMax: config.MYSQL_APPEND_BATCH_MAX,
    ackBatchMax: config.MYSQL_ACK_BATCH_MAX,
    batchConcurrency: config.MYSQL_APPEND_BATCHES_IN_FLIGHT,
  });
  const stores = {
    users: new ShardedUserStore(shards),
    messages,
    groups: new ShardedGroupStore(shards),
    bulk: new ShardedBulkImporter(shards),
  };
  let extraPort = 0;
  const phases: [string, string][] = [];

  try {
    // --- 1. seed -------------------------------------------------------------------------------
    log(`seeding ${settings.messages} messages for ${settings.users} users through the bulk path`);
    let lastLog = 0;
    const seeded = await seedData(stores, new Snowflake({ workerId: 1000 }), {
      users: settings.users,
      messages: settings.messages,
      groups: settings.groups,
      groupSize: 50,
      groupShare: 0.2,
      concurrency: 256,
      passwordHash: "x",
      run: "scale",
      onProgress: ({ messages: done }) => {
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log(`seeded ${done} messages`);
        }
      },
    });
    const seedRate = Math.round(seeded.messages / seeded.seconds);
    phases.push([
      "seed (bulk path)",
      `${seeded.messages} messages in ${seeded.conversations} conversations, ${seeded.seconds.toFixed(1)} s (${seedRate} msg/s)`,
    ]);
    log(phases.at(-1)?.[1] ?? "");
    const tableRows = await rowCounts(urls);

    // --- 2. writers, before the move ----------------------------------------------------------
    const writers = startWriters(messages, seeded.users, settings.writers, settings.rate);
    writers.phase = "before";
    await sleep(settings.baselineSeconds * 1000);

    // --- 3. a 4th instance, a third of the slots to it ------------------------------------------
    extraPort = await preferredPort(3309);
    const addBegan = performance.now();
    writers.phase = "adding the instance";
    await run("bash", [join(ROOT, "ops/add-mysql-instance.sh"), String(extraPort)], { timeout: 240_000 });
    const newUrl = `mysql://root@127.0.0.1:${extraPort}/${DB}`;
    await setBufferPool(newUrl, settings.bufferPoolMb);
    phases.push(["start a 4th MariaDB", `${((performance.now() - addBegan) / 1000).toFixed(1)} s`]);
    const control = createPool({ MYSQL_URL: urls[0] as string, MYSQL_POOL_SIZE: 2 });
    // CPU of every mariadbd and of this process (the rebalancer and the writers), and the
    // machine's: over the copy, and over the whole move.
    const meter = await UsageMeter.open({ processes: [], redis: [], mysql: [...urls, newUrl].map(mysqlAtOf) });
    let copyDone: Promise<UsageSnapshot> | undefined;
    const progress: Progress[] = [];
    const rebalancer = new Rebalancer(control, {
      batchSlots: settings.batchSlots,
      copyRows: settings.copyRows,
      maxRowsPerSecond: settings.maxRowsPerSecond,
      cleanupGraceMs: 2 * config.SHARD_MAP_REFRESH_MS,
      credentialsFrom: urls[0],
      onProgress: (p) => {
        if (progress.at(-1)?.phase !== p.phase || progress.at(-1)?.slotsDone !== p.slotsDone)
          log(`${p.phase}: ${p.slotsDone}/${p.slotsTotal} slots switched, ${p.rows} rows, ${p.rowsPerSecond} rows/s`);
        progress.push({ ...p });
        if (p.phase === "copy") copyDone ??= meter.snapshot();
      },
    });
    let copyUsage: Usage | undefined;
    let moveUsage: Usage | undefined;
    let moved = 0;
    let rebalanceSeconds = 0;
    let copySeconds = 0;
    let rowsWritten = 0;
    let summary: RunSummary | undefined;
    try {
      const map = await readShardMap(control);
      if (!map) throw new Error("no shard map");
      const plan = planRebalance(map, { add: { id: "s3", url: newUrl }, count: Math.round(map.slots / 3) });
      moved = plan.moves.length;
      const moving = new Set(plan.moves.map((m) => m.slot));
      writers.split = (convId) => (moving.has(slotOf(convId, map.slots)) ? "slots that moved" : "slots that stayed");
      writers.phase = "during the move";
      const began = performance.now();
      const start = await meter.snapshot();
      await rebalancer.start(plan);
      summary = await rebalancer.run(plan.jobId);
      rebalanceSeconds = (performance.now() - began) / 1000;
      const end = await meter.snapshot();
      copyUsage = meter.between(start, (await copyDone) ?? end);
      moveUsage = meter.between(start, end);
      const copied = progress.find((p) => p.phase === "copy");
      copySeconds = copied ? copied.rows / Math.max(copied.rowsPerSecond, 1) : rebalanceSeconds;
      rowsWritten = progress.at(-1)?.rows ?? 0;
    } finally {
      await rebalancer.close();
      await control.end();
      await meter.close();
    }
    writers.split = undefined;
    writers.phase = "after";
    await sleep(3000);
    await writers.stop();
    await shards.refresh();

    // --- 4. exactly once -----------------------------------------------------------------------
    const allUrls = [...urls, newUrl];
    const stored = await storedMessageCounts(allUrls, [...writers.acked.keys()]);
    const wrongPlace = await misplaced(allUrls, writers.acked);
    const once = [...writers.acked.keys()].filter((id) => stored.get(id) === 1).length;
    const movedRows = sumRows(tableRows, moved / shards.map.slots);

    // --- report --------------------------------------------------------------------------------
    const lat = (phase: string) => writers.latencies.get(phase) ?? [];
    const row = (phase: string) => {
      const l = lat(phase);
      return [
        phase,
        l.length,
        percentile(l, 0.5),
        percentile(l, 0.99),
        percentile(l, 1),
        writers.failures.get(phase) ?? 0,
      ];
    };
    const before99 = percentile(lat("before"), 0.99);
    const during99 = percentile(lat("during the move"), 0.99);
    return {
      markdown: [
        "## Rebalance",
        "",
        `Settings: ${settings.messages} messages seeded for ${settings.users} users (${settings.groups} groups of 50, 20 % of the messages), ${settings.writers} writers appending ${settings.rate} msg/s in all through the sharded message store during the whole run; REBALANCE_BATCH_SLOTS ${settings.batchSlots}, REBALANCE_COPY_ROWS ${settings.copyRows}, REBALANCE_MAX_ROWS_PER_SECOND ${settings.maxRowsPerSecond}; ${moved} of ${shards.map.slots} slots moved to the new instance; each instance's InnoDB buffer pool ${settings.bufferPoolMb} MB for the run.`,
        "",
        markdownTable(
          [
            "rows in the stack",
            "rows moved (about)",
            "rows written by the copy",
            "copy rows/s",
            "whole move s",
            "slots",
            "keys caught up from the change record",
            "slots compared whole after it",
          ],
          [
            [
              sumRows(tableRows, 1),
              movedRows,
              rowsWritten,
              Math.round(rowsWritten / Math.max(copySeconds, 0.001)),
              rebalanceSeconds.toFixed(1),
              moved,
              summary?.changes ?? 0,
              summary?.repairs ?? 0,
            ],
          ],
        ),
        "",
        "Rows written by the copy count every row the copy wrote (the full copy, the catch-up from the change record and the last catch-up of each fenced batch); copy rows/s is over the copy of every slot, before the first fence, the change record's start and first catch-up included. The whole move adds the fence, verify and switch of each batch and the cleanup of the source. Keys caught up: entries of the change record (sharding/change-record.ts) read for the moved slots, in the first catch-up and under each fence; slots compared whole: slots whose catch-up left them unequal (0 unless a change escaped the record).",
        "",
        "## CPU during the move",
        "",
        "CPU seconds of each process, and its share of one core, over the copy (to the first fence) and over the whole move; this process runs the rebalancer and the writers. The machine: every core's busy time from /proc/stat.",
        "",
        markdownTable(
          ["process", "copy: CPU s", "copy: share of one core", "whole move: CPU s", "whole move: share of one core"],
          cpuRows(copyUsage, moveUsage),
        ),
        "",
        "## Phases",
        "",
        markdownTable(["phase", "result"], phases),
        "",
        "## Appends while it ran",
        "",
        markdownTable(
          ["phase", "acked", "p50 ms", "p99 ms", "max ms", "failed"],
          [
            row("before"),
            row("adding the instance"),
            row("during the move"),
            row("during the move, slots that stayed"),
            row("during the move, slots that moved"),
            row("after"),
          ],
        ),
        "",
        `p99 during the move is ${(during99 / Math.max(before99, 1)).toFixed(2)}× the p99 before it (target: under 2×).`,
        "",
        writers.errors.size === 0
          ? "No append failed."
          : `Why appends failed: ${[...writers.errors].map(([why, n]) => `${n} × ${why}`).join("; ")}.`,
        "",
        `Exactly once: ${once} of ${writers.acked.size} acked appends stored exactly once over the four instances; ${wrongPlace} stored on an instance that does not own their slot.`,
        "",
      ].join("\n"),
      json: {
        settings,
        phases,
        moved,
        rowsWritten,
        copySeconds,
        rebalanceSeconds,
        summary,
        copyUsage,
        moveUsage,
        tableRows: Object.fromEntries(tableRows),
        once,
        acked: writers.acked.size,
      },
      ok: once === writers.acked.size && wrongPlace === 0 && summary?.repairs === 0,
    };
  } finally {
    await shards.close();
    for (const [url, bytes] of poolSizes) await setBufferPool(url, bytes / 2 ** 20).catch(() => undefined);
    if (!settings.keep) {
      await dropDatabase(extraPort ? [...urls, `mysql://root@127.0.0.1:${extraPort}/${DB}`] : urls);
      if (extraPort) {
        const pidFile = join(infra.runDir, `mariadb-${extraPort}.pid`);
        if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, "utf8").trim()), "SIGTERM");
      }
    }
  }
}

// --- helpers -----------------------------------------------------------------------------------

function cpuRows(copy: Usage | undefined, move: Usage | undefined): (string | number)[][] {
  if (!copy || !move) return [];
  const seconds = (ms: number) => (ms / 1000).toFixed(1);
  const rows = copy.processes.map((p, i) => {
    const whole = move.processes[i];
    return [
      p.role,
      seconds(p.cpuMs),
      `${Math.round(p.coreShare)} %`,
      seconds(whole?.cpuMs ?? 0),
      `${Math.round(whole?.coreShare ?? 0)} %`,
    ];
  });
  rows.push([
    `machine (${copy.cpus} cores)`,
    seconds(copy.machine.busyCpuMs),
    `${Math.round(copy.machine.busyPercent)} % of all cores`,
    seconds(move.machine.busyCpuMs),
    `${Math.round(move.machine.busyPercent)} % of all cores`,
  ]);
  return rows;
}

interface Writers {
  phase: string;
  acked: Map<string, string>;
  latencies: Map<string, number[]>;
  failures: Map<string, number>;
  /** While set, each append's latency also counts under "<phase>, <part>" (slots that moved or stayed). */
  split?: (convId: string) => string | undefined;
  /** Why appends failed: error code or message → count. */
  errors: Map<string, number>;
  stop(): Promise<void>;
}

/** `count` users each appending to the next seeded user, `rate` appends per second in all. */
function startWriters(messages: ShardedMessageStore, users: Uid[], count: number, rate: number): Writers {
  const w: Writers = {
    phase: "warm-up",
    acked: new Map(),
    latencies: new Map(),
    failures: new Map(),
    errors: new Map(),
    stop: async () => undefined,
  };
  let going = true;
  const pause = (count / Math.max(rate, 0.001)) * 1000;
  // One generator for every writer: a worker id shared by two writers (it was 900 + i % 100)
  // gave two messages one msg_id past 100 writers, and the store refused the second.
  const ids = new Snowflake({ workerId: 900 });
  const loops = Array.from({ length: Math.min(count, users.length - 1) }, async (_, i) => {
    const sender = users[i] as Uid;
    const recipient = users[i + 1] as Uid;
    await sleep(Math.random() * pause);
    for (let n = 0; going; n++) {
      const phase = w.phase;
      const began = performance.now();
      try {
        const { message } = await messages.append({
          convId: convIdForPair(sender, recipient),
          members: [sender, recipient],
          msgId: ids.next(),
          sender,
          recipient,
          clientMsgId: `w${i}-${n}`,
          kind: 1,
          text: `write ${n} during ${phase}`,
          sentAtMs: Date.now(),
        });
        w.acked.set(message.msgId, message.convId);
        const ms = performance.now() - began;
        const record = (key: string) => {
          const list = w.latencies.get(key) ?? [];
          list.push(ms);
          w.latencies.set(key, list);
        };
        record(phase);
        const part = w.split?.(message.convId);
        if (part) record(`${phase}, ${part}`);
      } catch (err) {
        w.failures.set(phase, (w.failures.get(phase) ?? 0) + 1);
        const e = err as { code?: unknown; message?: string };
        const why = `${String(e.code ?? "error")}: ${String(e.message ?? err).slice(0, 160)}`;
        w.errors.set(why, (w.errors.get(why) ?? 0) + 1);
      }
      await sleep(Math.max(0, pause - (performance.now() - began)));
    }
  });
  w.stop = async () => {
    going = false;
    await Promise.all(loops);
  };
  return w;
}

async function withConnection<T>(url: string, work: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: url, supportBigNumbers: true, bigNumberStrings: true });
  try {
    return await work(conn);
  } finally {
    await conn.end();
  }
}

/** Rows per table over the instances (information_schema's estimate is not enough: exact counts). */
async function rowCounts(instances: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const url of instances) {
    await withConnection(url, async (c) => {
      for (const table of ["messages", "conversations", "conversation_members", "user_conversations", "users"]) {
        const [rows] = await c.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table}`);
        counts.set(table, (counts.get(table) ?? 0) + Number(rows[0]?.n ?? 0));
      }
    });
  }
  return counts;
}

function sumRows(counts: Map<string, number>, share: number): number {
  return Math.round([...counts.values()].reduce((a, b) => a + b, 0) * share);
}

/** Acked appends found on an instance the final map does not give their conversation's slot. */
async function misplaced(instances: string[], acked: Map<string, string>): Promise<number> {
  const pool = createPool({ MYSQL_URL: instances[0] as string, MYSQL_POOL_SIZE: 1 });
  const map = await readShardMap(pool);
  await pool.end();
  if (!map) return acked.size;
  log(`final map: ${JSON.stringify(Object.fromEntries(slotCounts(map)))}`);
  let wrong = 0;
  for (const [i, url] of instances.entries()) {
    const id = i < 3 ? `s${i}` : "s3";
    const ids = [...acked].filter(([, convId]) => instanceOf(map, convId).id !== id).map(([msgId]) => msgId);
    wrong += [...(await storedMessageCounts([url], ids)).values()].reduce((a, b) => a + b, 0);
  }
  return wrong;
}

/** Sets an instance's buffer pool (resized online); answers the size it had, in bytes. */
async function setBufferPool(url: string, mb: number): Promise<number> {
  return withConnection(url.replace(/\/[^/]*$/, "/"), async (c) => {
    const [rows] = await c.query<RowDataPacket[]>("SELECT @@innodb_buffer_pool_size AS b");
    await c.query("SET GLOBAL innodb_buffer_pool_size = ?", [Math.round(mb) * 2 ** 20]);
    return Number(rows[0]?.b);
  });
}

async function dropDatabase(instances: string[]): Promise<void> {
  for (const url of instances) {
    await withConnection(url.replace(/\/[^/]*$/, "/"), (c) => c.query(`DROP DATABASE IF EXISTS \`${DB}\``)).catch(
      () => undefined,
    );
  }
}

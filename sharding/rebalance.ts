import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import type { Logger } from "../src/log/logger.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool, type Pool } from "../src/storage/mysql/pool.js";
import {
  encodeShardMap,
  moveSlots,
  type ShardInstance,
  type ShardMap,
  slotCounts,
  slotOf,
  validateShardMap,
  withCredentialsOf,
  withoutCredentials,
} from "../src/storage/sharded/shard-map.js";
import { readShardMap } from "../src/storage/sharded/shards.js";
import { type ChangedKeys, changesSince, isRecording, startChangeRecord, stopChangeRecord } from "./change-record.js";
import { PLACEMENTS, type TablePlacement, UNPLACED } from "./placements.js";

/** A slot's steps, in order; each is persisted once done, so a rerun starts after it. */
export const STEPS = ["planned", "copied", "fenced", "verified", "switched", "cleaned"] as const;
export type Step = (typeof STEPS)[number];

export interface SlotMove {
  slot: number;
  from: string;
  to: string;
}

export interface RebalancePlan {
  jobId: string;
  /** The map version the plan was made from. */
  fromVersion: number;
  /** Instances the plan adds to the map (with their URLs). */
  adds: ShardInstance[];
  /** Instances that own no slot once the plan ran. */
  retires: string[];
  moves: SlotMove[];
}

export interface PlanRequest {
  /** A new (or existing, empty) instance that receives slots. */
  add?: ShardInstance;
  /** With add: how many slots it receives (default: an even share, slots / instances). */
  count?: number;
  /** Instances to empty; their slots go to `to`, else to the remaining instances with the fewest slots. */
  retire?: string[];
  to?: string;
}

/** A plan the rebalancer must not run (it says why). */
export class PlanRefused extends Error {
  override name = "PlanRefused";
}

function byId(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The moves for a request, taken deterministically: an added instance takes, one at a time,
 * the highest slot of whichever instance owns the most; a retired instance's slots go one at a
 * time to whichever remaining instance owns the fewest. Checked by validatePlan.
 */
export function planRebalance(map: ShardMap, request: PlanRequest, jobId = newJobId()): RebalancePlan {
  const owners = map.owner.map((index) => map.instances[index]?.id ?? "");
  const ids = map.instances.map((i) => i.id);
  const adds: ShardInstance[] = [];
  const moves: SlotMove[] = [];
  const retires = [...new Set(request.retire ?? [])];
  const owned = new Map<string, number[]>(ids.map((id) => [id, []]));
  for (const [slot, id] of owners.entries()) owned.get(id)?.push(slot);

  if (request.add) {
    const target = request.add;
    if (!ids.includes(target.id)) {
      adds.push({ ...target });
      owned.set(target.id, []);
    }
    const members = owned.size;
    const count = request.count ?? Math.floor(map.slots / members);
    if (!Number.isInteger(count) || count < 1) throw new PlanRefused(`cannot move ${count} slots`);
    const available = map.slots - (owned.get(target.id)?.length ?? 0);
    if (count > available) throw new PlanRefused(`${count} slots asked, only ${available} are elsewhere`);
    for (let i = 0; i < count; i++) {
      const [donor] = [...owned]
        .filter(([id]) => id !== target.id)
        .sort(([a, sa], [b, sb]) => sb.length - sa.length || byId(a, b));
      const slot = donor?.[1].pop();
      if (donor === undefined || slot === undefined) break;
      moves.push({ slot, from: donor[0], to: target.id });
      owned.get(target.id)?.push(slot);
    }
  }
  for (const id of retires) {
    if (!owned.has(id)) throw new PlanRefused(`cannot retire ${id}: it is not in shard map v${map.version}`);
  }
  if (retires.length > 0) {
    const homes = request.to ? [request.to] : [...owned.keys()].filter((id) => !retires.includes(id));
    if (homes.length === 0) throw new PlanRefused("retiring every instance would leave the slots without a home");
    for (const home of homes) {
      if (retires.includes(home)) throw new PlanRefused(`${home} is both retired and a destination`);
      if (!owned.has(home)) throw new PlanRefused(`destination ${home} is not in shard map v${map.version}`);
    }
    for (const id of retires) {
      for (const slot of [...(owned.get(id) ?? [])].sort((a, b) => a - b)) {
        const [home] = homes
          .map((h) => [h, owned.get(h)?.length ?? 0] as const)
          .sort(([a, na], [b, nb]) => na - nb || byId(a, b));
        if (!home) break;
        const earlier = moves.find((m) => m.slot === slot);
        if (earlier) earlier.to = home[0];
        else moves.push({ slot, from: id, to: home[0] });
        owned.get(home[0])?.push(slot);
      }
      owned.set(id, []);
    }
  }
  const plan = { jobId, fromVersion: map.version, adds, retires, moves: moves.sort((a, b) => a.slot - b.slot) };
  validatePlan(map, plan);
  return plan;
}

/** The map once every move of the plan is done. */
export function plannedMap(map: ShardMap, plan: RebalancePlan): ShardMap {
  let next = map;
  for (const add of plan.adds) {
    if (!next.instances.some((i) => i.id === add.id)) next = { ...next, instances: [...next.instances, add] };
  }
  const byTarget = new Map<string, number[]>();
  for (const m of plan.moves) byTarget.set(m.to, [...(byTarget.get(m.to) ?? []), m.slot]);
  for (const [to, slots] of byTarget) {
    const instance = next.instances.find((i) => i.id === to);
    if (!instance) throw new PlanRefused(`slots ${slots.join(",")} would go to ${to}, which has no URL`);
    next = moveSlots(next, slots, instance);
  }
  return next;
}

/**
 * Refuses a plan that would leave a slot without a home (owned by a retired or unknown
 * instance, or by none), that moves a slot twice or from an instance that does not own it.
 */
export function validatePlan(map: ShardMap, plan: RebalancePlan): void {
  const seen = new Set<number>();
  for (const m of plan.moves) {
    if (!Number.isInteger(m.slot) || m.slot < 0 || m.slot >= map.slots) throw new PlanRefused(`no slot ${m.slot}`);
    if (seen.has(m.slot)) throw new PlanRefused(`slot ${m.slot} is moved twice`);
    seen.add(m.slot);
    const owner = map.instances[map.owner[m.slot] ?? -1]?.id;
    if (owner !== m.from) throw new PlanRefused(`slot ${m.slot} is owned by ${owner}, not ${m.from}`);
    if (m.from === m.to) throw new PlanRefused(`slot ${m.slot} moves from ${m.from} to itself`);
  }
  const after = plannedMap(map, plan);
  try {
    validateShardMap(after);
  } catch (err) {
    throw new PlanRefused((err as Error).message);
  }
  const retired = new Set(plan.retires);
  const homeless = after.owner
    .map((index, slot) => ({ slot, id: after.instances[index]?.id }))
    .filter((s) => s.id === undefined || retired.has(s.id));
  if (homeless.length > 0) {
    throw new PlanRefused(
      `${homeless.length} slot(s) would be left without a home (e.g. slot ${homeless[0]?.slot} on ${homeless[0]?.id})`,
    );
  }
}

/** What the plan does, for a person (the dry run prints this). */
export function describePlan(map: ShardMap, plan: RebalancePlan): string {
  const after = plannedMap(map, plan);
  const flows = new Map<string, number>();
  for (const m of plan.moves) flows.set(`${m.from} -> ${m.to}`, (flows.get(`${m.from} -> ${m.to}`) ?? 0) + 1);
  const lines = [
    `rebalance ${plan.jobId}: ${plan.moves.length} of ${map.slots} slots move (shard map v${map.version})`,
    ...plan.adds.map((a) => `  add instance ${a.id} (${redact(a.url)})`),
    ...plan.retires.map((id) => `  retire instance ${id}`),
    ...[...flows].map(([flow, n]) => `  ${flow}: ${n} slots`),
    `  slots per instance before: ${fmtCounts(slotCounts(map))}`,
    `  slots per instance after:  ${fmtCounts(slotCounts(after))}`,
  ];
  return lines.join("\n");
}

function fmtCounts(counts: Map<string, number>): string {
  return [...counts].map(([id, n]) => `${id}=${n}`).join(" ");
}

/** A URL without its password, for logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

function newJobId(): string {
  return `rb-${new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14)}-${randomBytes(3).toString("hex")}`;
}

export interface Progress {
  phase: "copy" | "switch" | "clean" | "done";
  slotsDone: number;
  slotsTotal: number;
  rows: number;
  rowsPerSecond: number;
  /** Seconds left at the current rate (slots), or null before a rate is known. */
  etaSeconds: number | null;
}

/** What a run did: slots, rows written, keys read from the change record, and repairs (slots
 *  the catch-up left unequal, then compared whole: 0 unless a change escaped the record). */
export interface RunSummary {
  slots: number;
  rows: number;
  changes: number;
  repairs: number;
  seconds: number;
}

export interface SlotDigest {
  rows: number;
  checksum: string;
}

export interface RebalancerOptions {
  /** Slots copied, fenced, verified and switched together (config.REBALANCE_BATCH_SLOTS). */
  batchSlots: number;
  /** Rows per read and write statement (config.REBALANCE_COPY_ROWS). */
  copyRows: number;
  /** Most rows copied per second, 0 for no limit (config.REBALANCE_MAX_ROWS_PER_SECOND). */
  maxRowsPerSecond?: number;
  /** How long readers may hold an older map (2 × SHARD_MAP_REFRESH_MS): the source copy is kept this long after the switch. */
  cleanupGraceMs: number;
  /** How each instance is reached when the map's URL is not right here (MYSQL_SHARDS by id). */
  urls?: Map<string, string>;
  /**
   * A URL whose user and password reach the instances the map and the stored plans name: they
   * are stored without credentials (the CLI's control instance, the first of MYSQL_SHARDS).
   */
  credentialsFrom?: string;
  log?: Logger;
  onProgress?: (p: Progress) => void;
  /** Tests: stop (as a crash would) right after a batch's slots reach this step. */
  crashAfter?: Step;
}

/** Thrown by crashAfter, as if the process had died there. */
export class SimulatedCrash extends Error {
  override name = "SimulatedCrash";
}

interface JobRow {
  plan: RebalancePlan;
  state: string;
}

/**
 * Moves slots between MySQL instances while the system runs. First every slot of the plan:
 *  1. copy: each source starts its change record (sharding/change-record.ts: triggers write
 *     the key of every row written in the moving slots), then the slots' rows are synced
 *     source → target while writes go on, then the keys the record holds since are copied
 *     (a catch-up that reads what changed, not the slots again). The sync compares per-slot
 *     row counts and checksums computed in each database first, and then moves only the
 *     slots that differ: a slot the target does not hold yet is streamed in multi-row
 *     statements, without reading the target; one it holds in part (a rerun) is diffed row by
 *     row. So the copy reads each table once, whatever the number of slots.
 * Then per batch of slots:
 *  2. fence: a slot_fence row on the source; its INSERT waits for the writes in flight, and
 *     every later write there is refused with a retryable SLOT_MOVING (the writer re-reads
 *     the map and waits) — the pause covers only these slots;
 *  3. verify: a last catch-up from the change record (complete now: the fence waited for the
 *     writes in flight), then row counts and checksums per slot must match (a slot without a
 *     record, or one the catch-up left unequal, is synced whole first);
 *  4. switch: shard map version n+1 names the target (nodes follow within SHARD_MAP_REFRESH_MS;
 *     a node still on the old map meets the fence, re-reads the map and follows at once);
 *  5. clean: the change record stops; after cleanupGraceMs (readers on an older map still read
 *     the frozen source), the source rows are deleted. The source keeps its fence row (`moved`).
 * Every step is persisted per slot in the control instance, so a rerun resumes after a crash.
 */
export class Rebalancer {
  readonly #pools = new Map<string, Pool>();

  constructor(
    private readonly control: Pool,
    private readonly options: RebalancerOptions,
  ) {}

  /** Stores a new job (refused while another job is unfinished). */
  async start(plan: RebalancePlan): Promise<void> {
    await this.prepare(plan);
    const map = await this.map();
    if (map.version !== plan.fromVersion) {
      throw new PlanRefused(`the plan was made from shard map v${plan.fromVersion}, the map is now v${map.version}`);
    }
    validatePlan(map, plan);
    const open = await this.openJob();
    if (open) throw new PlanRefused(`rebalance ${open} is unfinished: resume or abort it first`);
    const now = Date.now();
    await this.control.query(
      "INSERT INTO rebalance_jobs (job_id, plan_json, state, created_at, updated_at) VALUES (?, ?, 'running', ?, ?)",
      // Without credentials: the job row is read by whoever resumes it, with their own.
      [
        plan.jobId,
        JSON.stringify({ ...plan, adds: plan.adds.map((a) => ({ ...a, url: withoutCredentials(a.url) })) }),
        now,
        now,
      ],
    );
    if (plan.moves.length > 0) {
      await this.control.query(
        "INSERT INTO rebalance_slots (job_id, slot, from_id, to_id, step, updated_at) VALUES ?",
        [plan.moves.map((m) => [plan.jobId, m.slot, m.from, m.to, "planned", now])],
      );
    }
  }

  /** The unfinished job's id, if any. */
  async openJob(): Promise<string | null> {
    const [rows] = await this.control.query<RowDataPacket[]>(
      "SELECT job_id FROM rebalance_jobs WHERE state = 'running' ORDER BY created_at LIMIT 1",
    );
    return rows[0] ? String(rows[0].job_id) : null;
  }

  /** Per step, how many slots of the job reached it. */
  async stepCounts(jobId: string): Promise<Record<string, number>> {
    const [rows] = await this.control.query<RowDataPacket[]>(
      "SELECT step, COUNT(*) AS n FROM rebalance_slots WHERE job_id = ? GROUP BY step",
      [jobId],
    );
    return Object.fromEntries(rows.map((r) => [String(r.step), Number(r.n)]));
  }

  /** Runs (or resumes) the job to the end. */
  async run(jobId: string): Promise<RunSummary> {
    const job = await this.job(jobId);
    if (job.state !== "running") throw new PlanRefused(`rebalance ${jobId} is ${job.state}`);
    const { plan } = job;
    const log = this.options.log?.child({ jobId });
    await this.prepare(plan);
    const steps = await this.steps(jobId);
    const began = Date.now();
    let rows = 0;
    const total = plan.moves.length;
    const report = (phase: Progress["phase"]) => {
      const done = [...steps.values()].filter((s) => STEPS.indexOf(s) >= STEPS.indexOf("switched")).length;
      const seconds = (Date.now() - began) / 1000;
      const slotRate = seconds > 0 ? done / seconds : 0;
      this.options.onProgress?.({
        phase,
        slotsDone: done,
        slotsTotal: total,
        rows,
        rowsPerSecond: seconds > 0 ? Math.round(rows / seconds) : 0,
        etaSeconds: slotRate > 0 ? Math.round((total - done) / slotRate) : null,
      });
    };
    await this.checkTables(plan);
    this.#throttle = { sinceMs: Date.now(), rows: 0 };
    this.#stats = { changes: 0, repairs: 0 };
    // By source: a batch's slots then come from one instance, and its last sync reads one pair.
    const pending = plan.moves
      .filter((m) => steps.get(m.slot) !== "switched" && steps.get(m.slot) !== "cleaned")
      .sort((a, b) => byId(a.from, b.from) || a.slot - b.slot);
    const planned = pending.filter((m) => (steps.get(m.slot) ?? "planned") === "planned");
    if (planned.length > 0) {
      rows += await this.copy(plan, planned, steps);
      report("copy");
    }
    for (let i = 0; i < pending.length; i += this.options.batchSlots) {
      const batch = pending.slice(i, i + this.options.batchSlots);
      rows += await this.moveBatch(plan, batch, steps);
      report("copy");
    }
    // Every slot is switched: its source takes no writes for it any more.
    await this.stopRecording(plan);
    const toClean = plan.moves.filter((m) => steps.get(m.slot) === "switched");
    if (toClean.length > 0) {
      report("switch");
      // Nodes re-read the map every SHARD_MAP_REFRESH_MS; until then they may read the source.
      await sleep(this.options.cleanupGraceMs);
      for (let i = 0; i < toClean.length; i += this.options.batchSlots) {
        const batch = toClean.slice(i, i + this.options.batchSlots);
        await this.clean(plan, batch);
        await this.mark(plan.jobId, batch, "cleaned", steps);
        report("clean");
      }
    }
    await this.control.query("UPDATE rebalance_jobs SET state = 'done', updated_at = ? WHERE job_id = ?", [
      Date.now(),
      jobId,
    ]);
    report("done");
    const summary = { slots: total, rows, ...this.#stats, seconds: (Date.now() - began) / 1000 };
    log?.info(summary, "rebalance done");
    return summary;
  }

  /**
   * Undoes an unfinished job's slots that were not switched yet (their target copies and source
   * fences go; they stay where they were). Switched slots stay moved: to take them back, plan
   * a rebalance the other way.
   */
  async abort(jobId: string): Promise<{ reverted: number; kept: number }> {
    const job = await this.job(jobId);
    await this.prepare(job.plan);
    const steps = await this.steps(jobId);
    const undo = job.plan.moves.filter(
      (m) => STEPS.indexOf(steps.get(m.slot) ?? "planned") < STEPS.indexOf("switched"),
    );
    await this.stopRecording(job.plan);
    for (const [from, moves] of groupBy(undo, (m) => m.from)) {
      await this.pool(from).query("DELETE FROM slot_fence WHERE slot IN (?) AND job_id = ?", [
        moves.map((m) => m.slot),
        jobId,
      ]);
    }
    for (const [to, moves] of groupBy(undo, (m) => m.to)) {
      await this.deleteSlots(
        to,
        moves.map((m) => m.slot),
        job.plan,
      );
    }
    await this.control.query("UPDATE rebalance_jobs SET state = 'aborted', updated_at = ? WHERE job_id = ?", [
      Date.now(),
      jobId,
    ]);
    return { reverted: undo.length, kept: job.plan.moves.length - undo.length };
  }

  /** Both instances' digests of these slots, and which slots differ. */
  private async compare(from: string, to: string, slots: number[], slotCount: number): Promise<Comparison> {
    const [source, target] = await Promise.all([
      this.digests(from, slots, slotCount),
      this.digests(to, slots, slotCount),
    ]);
    const differ = slots.filter((s) => {
      const [a, b] = [source.get(s), target.get(s)];
      return a?.rows !== b?.rows || a?.checksum !== b?.checksum;
    });
    return { source, target, equal: differ.length === 0, differ };
  }

  /** Rows and checksum per slot on one instance (for checks before and after). */
  async digests(instanceId: string, slots: readonly number[], slotCount: number): Promise<Map<number, SlotDigest>> {
    const totals = new SlotTotals(slots);
    for (const placement of PLACEMENTS) {
      if (!(await this.hasTable(instanceId, placement.table))) continue;
      totals.add(await this.tableDigests(instanceId, placement, slots, slotCount));
    }
    return totals.digests();
  }

  /**
   * One table's rows and checksum per slot (slots without rows are absent). Computed by the
   * database in one scan where SQL can place a row (keySql): a CRC-32 of every column's bytes
   * (HEX, so no separator or charset can make two rows alike), summed per slot. The folded
   * name and email indexes are read and hashed here.
   */
  private async tableDigests(
    instanceId: string,
    placement: TablePlacement,
    slots: readonly number[],
    slotCount: number,
  ): Promise<Map<number, TableDigest>> {
    const digests = new Map<number, TableDigest>();
    if (slots.length === 0) return digests;
    if (!placement.keySql) {
      for await (const page of this.read(instanceId, placement, slots, slotCount)) {
        for (const row of page) {
          const slot = slotOf(placement.keyOf(row), slotCount);
          const d = digests.get(slot) ?? { rows: 0, sum: 0n };
          d.rows += 1;
          d.sum += BigInt(rowHash(placement.table, row));
          digests.set(slot, d);
        }
      }
      return digests;
    }
    const columns = await this.columns(instanceId, placement.table);
    const rowCrc = `CRC32(CONCAT_WS('|', ${columns.map((c) => `IFNULL(HEX(t.\`${c}\`), '-')`).join(", ")}))`;
    // A conversation's rows: the slot's conversations first, then a key range of each.
    const source = placement.byConversation
      ? `conversations c STRAIGHT_JOIN ${placement.table} t ON t.conv_id = c.conv_id`
      : `${placement.table} t`;
    const slot = `CRC32(${placement.byConversation ? "c.conv_id" : placement.keySql("t.")}) % ?`;
    const [rows] = await this.pool(instanceId).query<RowDataPacket[]>(
      `SELECT ${slot} AS slot, COUNT(*) AS n, SUM(${rowCrc}) AS s FROM ${source} WHERE ${slot} IN (?) GROUP BY slot`,
      [slotCount, slotCount, [...slots]],
    );
    for (const r of rows) digests.set(Number(r.slot), { rows: Number(r.n), sum: BigInt(String(r.s)) });
    return digests;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((p) => p.end().catch(() => undefined)));
    this.#pools.clear();
  }

  // --- one batch through copy, fence, verify, switch ------------------------------------------

  /**
   * Copies these slots (every slot of the plan not copied yet, at once): the change record
   * starts on each source, then a full copy (a sync, so a rerun after a crash redoes only what
   * differs), then a catch-up of the keys the record holds since.
   */
  private async copy(plan: RebalancePlan, moves: SlotMove[], steps: Map<number, Step>): Promise<number> {
    const slotCount = (await this.map()).slots;
    const pairs = [...groupBy(moves, (m) => `${m.from}>${m.to}`)].map(([pair, own]) => {
      const [from = "", to = ""] = pair.split(">");
      return { from, to, slots: own.map((m) => m.slot) };
    });
    const marks = await this.recordChanges(plan, moves, steps, slotCount);
    // The pairs at once: each alternates between reading one instance and writing another.
    let rows = 0;
    for (const s of await Promise.all(pairs.map((p) => this.sync(p.from, p.to, p.slots, slotCount)))) rows += s.rows;
    for (const p of pairs) {
      const caught = await this.catchUp(p.from, p.to, p.slots, marks.get(p.from) ?? 0, slotCount);
      rows += caught.rows;
      await this.setMark(plan.jobId, p.slots, caught.complete);
    }
    await this.mark(plan.jobId, moves, "copied", steps);
    return rows;
  }

  /**
   * Makes sure each source of these moves records its changes, and answers its mark (the
   * change id the catch-up starts after). A source records from the first copy of the job on;
   * a resumed job keeps its record when every trigger is still there. Otherwise the record
   * starts again: the slots being copied get the new mark, the other slots of the source lose
   * theirs, and their last sync under the fence compares the whole slots instead.
   */
  private async recordChanges(
    plan: RebalancePlan,
    moves: SlotMove[],
    steps: Map<number, Step>,
    slotCount: number,
  ): Promise<Map<string, number>> {
    const marks = new Map<string, number>();
    const stored = await this.changeMarks(plan.jobId);
    for (const [from, own] of groupBy(moves, (m) => m.from)) {
      const pool = this.pool(from);
      const placements = await this.placementsOn(from);
      const slots = own.map((m) => m.slot);
      const known = slots.map((s) => stored.get(s));
      if (known.every((m) => m !== undefined && m !== null) && (await isRecording(pool, placements))) {
        marks.set(from, Math.min(...(known as number[])));
        continue;
      }
      // Every slot still to switch from this source is recorded (the triggers name them).
      const pending = plan.moves.filter(
        (m) => m.from === from && STEPS.indexOf(steps.get(m.slot) ?? "planned") < STEPS.indexOf("switched"),
      );
      const mark = await startChangeRecord(
        pool,
        placements,
        pending.map((m) => m.slot),
        slotCount,
      );
      const others = pending.filter((m) => !slots.includes(m.slot)).map((m) => m.slot);
      if (others.length > 0) await this.setMark(plan.jobId, others, null);
      await this.setMark(plan.jobId, slots, mark);
      marks.set(from, mark);
      this.options.log?.info({ jobId: plan.jobId, instanceId: from, mark }, "change record started");
    }
    return marks;
  }

  /**
   * Copies the rows whose keys the change record holds for these slots since `mark`: each is
   * read on the source by its key and written to the target, or deleted there when the source
   * has it no more. Answers the rows written and how far the record was read completely.
   */
  private async catchUp(
    from: string,
    to: string,
    slots: number[],
    mark: number,
    slotCount: number,
  ): Promise<{ rows: number; complete: number }> {
    const placements = await this.placementsOn(from);
    const changed = await changesSince(this.pool(from), placements, mark, slots, slotCount, this.options.copyRows * 10);
    this.#stats.changes += changed.entries;
    return { rows: await this.applyChanges(from, to, changed), complete: changed.complete };
  }

  private async applyChanges(from: string, to: string, changed: ChangedKeys): Promise<number> {
    let written = 0;
    for (const placement of PLACEMENTS) {
      const keys = changed.byTable.get(placement.table) ?? [];
      const pk = placement.pk.join(", ");
      const typed = await this.typedKeys(from, placement, keys);
      for (let i = 0; i < typed.length; i += this.options.copyRows) {
        const part = typed.slice(i, i + this.options.copyRows);
        const [rows] = await this.pool(from).query<RowDataPacket[]>(
          `SELECT * FROM ${placement.table} WHERE (${pk}) IN (?)`,
          [part],
        );
        if (rows.length > 0) await this.upsert(to, placement.table, rows);
        const present = new Set(rows.map((r) => keyText(placement.pk.map((c) => r[c]))));
        const gone = part.filter((k) => !present.has(keyText(k)));
        if (gone.length > 0) await this.pool(to).query(`DELETE FROM ${placement.table} WHERE (${pk}) IN (?)`, [gone]);
        written += rows.length + gone.length;
        await this.throttle(rows.length);
      }
    }
    return written;
  }

  private async moveBatch(plan: RebalancePlan, batch: SlotMove[], steps: Map<number, Step>): Promise<number> {
    const slotCount = (await this.map()).slots;
    const at = (step: Step) => batch.filter((m) => steps.get(m.slot) === step);
    let rows = 0;
    const fence = at("copied");
    if (fence.length > 0) {
      for (const [from, moves] of groupBy(fence, (m) => m.from)) {
        const now = Date.now();
        // Waits for the writes in flight on these slots (they hold the shared lock), then every
        // later write there is refused.
        await this.pool(from).query(
          `INSERT INTO slot_fence (slot, state, job_id, created_at) VALUES ?
           ON DUPLICATE KEY UPDATE state = 'moving', job_id = VALUES(job_id), created_at = VALUES(created_at)`,
          [moves.map((m) => [m.slot, "moving", plan.jobId, now])],
        );
      }
      await this.mark(plan.jobId, fence, "fenced", steps);
    }
    const verify = at("fenced");
    if (verify.length > 0) {
      const marks = await this.changeMarks(plan.jobId);
      for (const [pair, moves] of groupBy(verify, (m) => `${m.from}>${m.to}`)) {
        const [from = "", to = ""] = pair.split(">");
        const slots = moves.map((m) => m.slot);
        const known = slots.map((s) => marks.get(s));
        const recorded =
          known.every((m) => m !== undefined && m !== null) &&
          (await isRecording(this.pool(from), await this.placementsOn(from)));
        // The fence has waited for every write in flight on these slots, so the record holds
        // all of their changes: the catch-up from it is the last sync.
        let digests: Comparison | null = null;
        if (recorded) {
          rows += (await this.catchUp(from, to, slots, Math.min(...(known as number[])), slotCount)).rows;
          digests = await this.compare(from, to, slots, slotCount);
          if (!digests.equal) {
            this.#stats.repairs += 1;
            this.options.log?.warn(
              { jobId: plan.jobId, from, to, slots: digests.differ },
              "slots differ after the change record's catch-up; comparing them whole",
            );
          }
        }
        if (!digests?.equal) {
          const synced = await this.sync(from, to, slots, slotCount);
          rows += synced.rows;
          // A sync that found every table equal has just verified the slots: its digests stand.
          digests = synced.equal
            ? { source: synced.equal, target: synced.equal, equal: true, differ: [] }
            : await this.compare(from, to, slots, slotCount);
        }
        for (const slot of slots) {
          const s = digests.source.get(slot);
          const t = digests.target.get(slot);
          if (!s || !t || s.rows !== t.rows || s.checksum !== t.checksum) {
            throw new Error(
              `slot ${slot}: ${from} has ${s?.rows} rows (${s?.checksum}), ${to} has ${t?.rows} (${t?.checksum}); still fenced, rerun to retry`,
            );
          }
          await this.control.query(
            "UPDATE rebalance_slots SET `rows` = ?, checksum = ? WHERE job_id = ? AND slot = ?",
            [s.rows, s.checksum, plan.jobId, slot],
          );
        }
      }
      await this.mark(plan.jobId, verify, "verified", steps);
    }
    const switching = at("verified");
    if (switching.length > 0) {
      for (const [to, moves] of groupBy(switching, (m) => m.to)) {
        // A fence left by an earlier move away from this instance must not refuse the writes now.
        await this.pool(to).query("DELETE FROM slot_fence WHERE slot IN (?)", [moves.map((m) => m.slot)]);
      }
      await this.switchMap(plan, switching);
      for (const [from, moves] of groupBy(switching, (m) => m.from)) {
        await this.pool(from).query("UPDATE slot_fence SET state = 'moved' WHERE slot IN (?) AND job_id = ?", [
          moves.map((m) => m.slot),
          plan.jobId,
        ]);
      }
      await this.mark(plan.jobId, switching, "switched", steps);
    }
    return rows;
  }

  /** Stores map version n+1 with the moves applied (again from the newest map if another writer won). */
  private async switchMap(plan: RebalancePlan, moves: SlotMove[]): Promise<void> {
    for (;;) {
      const map = await this.map();
      const todo = moves.filter((m) => map.instances[map.owner[m.slot] ?? -1]?.id !== m.to);
      if (todo.length === 0) return;
      const partial: RebalancePlan = { ...plan, moves: todo, retires: [] };
      const next = plannedMap(map, partial);
      const [result] = await this.control.query<ResultSetHeader>(
        "INSERT IGNORE INTO shard_map (version, map_json, created_at) VALUES (?, ?, ?)",
        [next.version, encodeShardMap(next), Date.now()],
      );
      if (result.affectedRows === 1) {
        this.options.log?.info({ version: next.version, slots: todo.length }, "shard map switched");
        return;
      }
    }
  }

  private async clean(plan: RebalancePlan, moves: SlotMove[]): Promise<void> {
    await Promise.all(
      [...groupBy(moves, (m) => m.from)].map(([from, own]) =>
        this.deleteSlots(
          from,
          own.map((m) => m.slot),
          plan,
        ),
      ),
    );
  }

  // --- rows ------------------------------------------------------------------------------------

  /**
   * Makes target's rows of these slots equal to source's, table by table: only the slots whose
   * digests differ are touched; of those, a slot the target has no rows of is streamed over
   * (copyInto), the others are diffed row by row (diffInto). Answers the rows written, and
   * when no slot of any table differed, the slots' digests (then equal on both instances).
   */
  private async sync(
    from: string,
    to: string,
    slots: number[],
    slotCount: number,
  ): Promise<{ rows: number; equal?: Map<number, SlotDigest> }> {
    let written = 0;
    let differed = false;
    const totals = new SlotTotals(slots);
    for (const placement of PLACEMENTS) {
      if (!(await this.hasTable(from, placement.table))) continue;
      const [source, target] = await Promise.all([
        this.tableDigests(from, placement, slots, slotCount),
        this.tableDigests(to, placement, slots, slotCount),
      ]);
      totals.add(source);
      const differ = slots.filter((s) => !sameDigest(source.get(s), target.get(s)));
      if (differ.length === 0) continue;
      differed = true;
      const fresh = differ.filter((s) => !target.has(s));
      const partial = differ.filter((s) => target.has(s));
      if (fresh.length > 0) written += await this.copyInto(from, to, placement, fresh, slotCount);
      if (partial.length > 0) written += await this.diffInto(from, to, placement, partial, slotCount);
    }
    return differed ? { rows: written } : { rows: 0, equal: totals.digests() };
  }

  /** Streams the source's rows of slots the target holds none of: no target read, no hashing. */
  private async copyInto(
    from: string,
    to: string,
    placement: TablePlacement,
    slots: number[],
    slotCount: number,
  ): Promise<number> {
    let written = 0;
    for await (const page of this.read(from, placement, slots, slotCount)) {
      if (page.length === 0) continue;
      await this.upsert(to, placement.table, page);
      written += page.length;
      await this.throttle(page.length);
    }
    return written;
  }

  /** Inserts or updates what differs and deletes what the source no longer has. */
  private async diffInto(
    from: string,
    to: string,
    placement: TablePlacement,
    slots: number[],
    slotCount: number,
  ): Promise<number> {
    let written = 0;
    const targetHashes = new Map<string, number>();
    for await (const page of this.read(to, placement, slots, slotCount)) {
      for (const row of page) targetHashes.set(pkOf(placement, row), rowHash(placement.table, row));
    }
    for await (const page of this.read(from, placement, slots, slotCount)) {
      const changed: RowDataPacket[] = [];
      for (const row of page) {
        const pk = pkOf(placement, row);
        if (targetHashes.get(pk) !== rowHash(placement.table, row)) changed.push(row);
        targetHashes.delete(pk);
      }
      if (changed.length > 0) {
        await this.upsert(to, placement.table, changed);
        written += changed.length;
        await this.throttle(changed.length);
      }
    }
    // What is left exists only on the target: deleted at the source since the last pass.
    const gone = await this.typedKeys(
      to,
      placement,
      [...targetHashes.keys()].map((pk) => JSON.parse(pk) as unknown[]),
    );
    for (let i = 0; i < gone.length; i += this.options.copyRows) {
      const part = gone.slice(i, i + this.options.copyRows);
      await this.pool(to).query(`DELETE FROM ${placement.table} WHERE (${placement.pk.join(", ")}) IN (?)`, [part]);
    }
    return written;
  }

  #throttle = { sinceMs: Date.now(), rows: 0 };
  #stats = { changes: 0, repairs: 0 };

  /** REBALANCE_MAX_ROWS_PER_SECOND: waits until the rows copied so far fit the rate since the run began. */
  private async throttle(rows: number): Promise<void> {
    const max = this.options.maxRowsPerSecond ?? 0;
    if (max <= 0) return;
    this.#throttle.rows += rows;
    const wait = this.#throttle.sinceMs + (this.#throttle.rows / max) * 1000 - Date.now();
    if (wait > 0) await sleep(wait);
  }

  private async upsert(instanceId: string, table: string, rows: RowDataPacket[]): Promise<void> {
    const columns = Object.keys(rows[0] ?? {});
    const quoted = columns.map((c) => `\`${c}\``);
    await this.pool(instanceId).query(
      `INSERT INTO ${table} (${quoted.join(", ")}) VALUES ?
       ON DUPLICATE KEY UPDATE ${quoted.map((c) => `${c} = VALUES(${c})`).join(", ")}`,
      [rows.map((r) => columns.map((c) => r[c]))],
    );
  }

  private async deleteSlots(instanceId: string, slots: number[], plan: RebalancePlan): Promise<void> {
    const slotCount = (await this.map()).slots;
    // A conversation's rows are found through its conversations row: they go before it.
    const order = [...PLACEMENTS.filter((p) => p.byConversation), ...PLACEMENTS.filter((p) => !p.byConversation)];
    for (const placement of order) {
      if (!(await this.hasTable(instanceId, placement.table))) continue;
      // One pass over the keys (the primary key's columns only), each page deleted as it comes:
      // a DELETE … LIMIT by slot would rescan from the start for every chunk.
      for await (const page of this.read(instanceId, placement, slots, slotCount, placement.pk)) {
        if (page.length === 0) continue;
        const keys = await this.typedKeys(
          instanceId,
          placement,
          page.map((row) => placement.pk.map((c) => row[c])),
        );
        await this.pool(instanceId).query(`DELETE FROM ${placement.table} WHERE (${placement.pk.join(", ")}) IN (?)`, [
          keys,
        ]);
      }
    }
    this.options.log?.debug({ jobId: plan.jobId, instanceId, slots: slots.length }, "slot rows deleted");
  }

  /**
   * The rows of these slots, in pages by primary key (keyset pagination, so each page goes on
   * where the last ended and a pass reads the table once). The next page is asked for before
   * this one is handed over, so reading the source overlaps writing the target.
   */
  private async *read(
    instanceId: string,
    placement: TablePlacement,
    slots: readonly number[],
    slotCount: number,
    columns?: readonly string[],
  ): AsyncGenerator<RowDataPacket[]> {
    if (placement.byConversation) {
      yield* this.readByConversation(instanceId, placement, slots, slotCount, columns);
      return;
    }
    const wanted = new Set(slots);
    const select = columns ? columns.join(", ") : "*";
    const fetch = async (after: unknown[] | null): Promise<RowDataPacket[]> => {
      const where: string[] = [];
      const params: unknown[] = [];
      if (placement.keySql) {
        where.push(`CRC32(${placement.keySql("")}) % ? IN (?)`);
        params.push(slotCount, [...wanted]);
      }
      if (after) {
        const past = keyAfter(placement.pk, after);
        where.push(past.sql);
        params.push(...past.params);
      }
      const [rows] = await this.pool(instanceId).query<RowDataPacket[]>(
        `SELECT ${select} FROM ${placement.table} ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY ${placement.pk.join(", ")} LIMIT ?`,
        [...params, this.options.copyRows],
      );
      return rows;
    };
    let next = fetch(null);
    for (;;) {
      const rows = await next;
      if (rows.length === 0) return;
      const full = rows.length >= this.options.copyRows;
      if (full) {
        const last = rows[rows.length - 1] as RowDataPacket;
        next = fetch(placement.pk.map((c) => last[c]));
        // Awaited at the next turn; a consumer that stops first must not leave it unhandled.
        next.catch(() => undefined);
      }
      yield placement.keySql ? rows : rows.filter((r) => wanted.has(slotOf(placement.keyOf(r), slotCount)));
      if (!full) return;
    }
  }

  /**
   * read() for a conversation's rows: the slot's conversation ids from `conversations` (one
   * scan of that table), then each chunk of them as key ranges of the table, in key order.
   */
  private async *readByConversation(
    instanceId: string,
    placement: TablePlacement,
    slots: readonly number[],
    slotCount: number,
    columns?: readonly string[],
  ): AsyncGenerator<RowDataPacket[]> {
    const [convs] = await this.pool(instanceId).query<RowDataPacket[]>(
      "SELECT conv_id FROM conversations WHERE CRC32(conv_id) % ? IN (?) ORDER BY conv_id",
      [slotCount, [...slots]],
    );
    const ids = convs.map((r) => r.conv_id as unknown);
    const select = columns ? columns.join(", ") : "*";
    const perChunk = Math.max(1, Math.floor(this.options.copyRows / 10));
    for (let i = 0; i < ids.length; i += perChunk) {
      const chunk = ids.slice(i, i + perChunk);
      let after: unknown[] | null = null;
      for (;;) {
        const past = after ? keyAfter(placement.pk, after) : null;
        const [rows] = await this.pool(instanceId).query<RowDataPacket[]>(
          `SELECT ${select} FROM ${placement.table} WHERE conv_id IN (?) ${past ? `AND ${past.sql}` : ""}
           ORDER BY ${placement.pk.join(", ")} LIMIT ?`,
          [chunk, ...(past?.params ?? []), this.options.copyRows],
        );
        if (rows.length > 0) yield rows;
        if (rows.length < this.options.copyRows) break;
        const last = rows[rows.length - 1] as RowDataPacket;
        after = placement.pk.map((c) => last[c]);
      }
    }
  }

  /** A table's columns, by name (the same order on every instance: one schema). */
  private async columns(instanceId: string, table: string): Promise<string[]> {
    return (await this.columnTypes(instanceId, table)).map((c) => c.name);
  }

  /**
   * Primary keys with their integer columns as numbers. Keys come as text (the record keeps
   * them so, and BIGINTs are read as strings), but MariaDB compares a quoted number with an
   * integer column as a double: (conv_id, uid) IN (…) missed one of two uids a double cannot
   * tell apart, and a DELETE by such a list took rows it did not name.
   */
  private async typedKeys(instanceId: string, placement: TablePlacement, keys: unknown[][]): Promise<unknown[][]> {
    const integers = new Set(
      (await this.columnTypes(instanceId, placement.table)).filter((c) => c.integer).map((c) => c.name),
    );
    const at = placement.pk.map((c) => integers.has(c));
    return keys.map((k) => k.map((v, i) => (at[i] && v !== null && v !== undefined ? BigInt(String(v)) : v)));
  }

  /** A table's columns by name, each with whether it holds integers. */
  private async columnTypes(instanceId: string, table: string): Promise<{ name: string; integer: boolean }[]> {
    const key = `${instanceId}/${table}`;
    let known = this.#columns.get(key);
    if (!known) {
      const [rows] = await this.pool(instanceId).query<RowDataPacket[]>(
        "SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY column_name",
        [table],
      );
      known = rows.map((r) => ({ name: String(r.c), integer: /int$/i.test(String(r.t)) }));
      this.#columns.set(key, known);
    }
    return known;
  }

  readonly #columns = new Map<string, { name: string; integer: boolean }[]>();

  /**
   * Refuses to move data it cannot place: a table on a source with rows, but no placement
   * here, would be left behind on the old instance.
   */
  private async checkTables(plan: RebalancePlan): Promise<void> {
    const known = new Set(PLACEMENTS.map((p) => p.table));
    for (const from of new Set(plan.moves.map((m) => m.from))) {
      const [tables] = await this.pool(from).query<RowDataPacket[]>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()",
      );
      for (const { t } of tables) {
        const table = String(t);
        if (known.has(table) || UNPLACED.has(table)) continue;
        const [rows] = await this.pool(from).query<RowDataPacket[]>(`SELECT 1 FROM \`${table}\` LIMIT 1`);
        if (rows.length > 0) {
          throw new PlanRefused(
            `table ${table} on ${from} has rows but no placement in sharding/rebalance.ts PLACEMENTS; add one before rebalancing`,
          );
        }
      }
    }
  }

  // --- bookkeeping -----------------------------------------------------------------------------

  private async mark(jobId: string, moves: SlotMove[], step: Step, steps: Map<number, Step>): Promise<void> {
    await this.control.query("UPDATE rebalance_slots SET step = ?, updated_at = ? WHERE job_id = ? AND slot IN (?)", [
      step,
      Date.now(),
      jobId,
      moves.map((m) => m.slot),
    ]);
    for (const m of moves) steps.set(m.slot, step);
    if (this.options.crashAfter === step) throw new SimulatedCrash(`stopped after ${step}`);
  }

  private async setMark(jobId: string, slots: number[], mark: number | null): Promise<void> {
    await this.control.query("UPDATE rebalance_slots SET change_mark = ? WHERE job_id = ? AND slot IN (?)", [
      mark,
      jobId,
      slots,
    ]);
  }

  /** Each slot's change mark (null: none, its last sync compares it whole). */
  private async changeMarks(jobId: string): Promise<Map<number, number | null>> {
    const [rows] = await this.control.query<RowDataPacket[]>(
      "SELECT slot, change_mark FROM rebalance_slots WHERE job_id = ?",
      [jobId],
    );
    return new Map(rows.map((r) => [Number(r.slot), r.change_mark === null ? null : Number(r.change_mark)]));
  }

  /** The placed tables this instance has. */
  private async placementsOn(instanceId: string): Promise<TablePlacement[]> {
    const present: TablePlacement[] = [];
    for (const placement of PLACEMENTS) if (await this.hasTable(instanceId, placement.table)) present.push(placement);
    return present;
  }

  /** Ends the change record on every source of the plan (its triggers and keys go). */
  private async stopRecording(plan: RebalancePlan): Promise<void> {
    for (const from of new Set(plan.moves.map((m) => m.from))) {
      await stopChangeRecord(this.pool(from), await this.placementsOn(from));
    }
  }

  private async job(jobId: string): Promise<JobRow> {
    const [rows] = await this.control.query<RowDataPacket[]>(
      "SELECT plan_json, state FROM rebalance_jobs WHERE job_id = ?",
      [jobId],
    );
    const row = rows[0];
    if (!row) throw new PlanRefused(`no rebalance ${jobId}`);
    return { plan: JSON.parse(String(row.plan_json)) as RebalancePlan, state: String(row.state) };
  }

  private async steps(jobId: string): Promise<Map<number, Step>> {
    const [rows] = await this.control.query<RowDataPacket[]>(
      "SELECT slot, step FROM rebalance_slots WHERE job_id = ?",
      [jobId],
    );
    return new Map(rows.map((r) => [Number(r.slot), String(r.step) as Step]));
  }

  private async map(): Promise<ShardMap> {
    const map = await readShardMap(this.control);
    if (!map) throw new PlanRefused("no shard map stored on the control instance yet");
    return map;
  }

  private readonly tables = new Map<string, Set<string>>();

  private async hasTable(instanceId: string, table: string): Promise<boolean> {
    let known = this.tables.get(instanceId);
    if (!known) {
      const [rows] = await this.pool(instanceId).query<RowDataPacket[]>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()",
      );
      known = new Set(rows.map((r) => String(r.t)));
      this.tables.set(instanceId, known);
    }
    return known.has(table);
  }

  private urlOf(id: string, fallback?: string): string {
    const url = this.options.urls?.get(id) ?? fallback;
    if (!url) throw new PlanRefused(`no URL for instance ${id}`);
    return withCredentialsOf(url, this.options.credentialsFrom);
  }

  /** A pool on an instance of the map (or of a job's adds). */
  pool(instanceId: string): Pool {
    let pool = this.#pools.get(instanceId);
    if (!pool) {
      pool = createPool({ MYSQL_URL: this.urlOf(instanceId, this.#mapUrls.get(instanceId)), MYSQL_POOL_SIZE: 4 });
      this.#pools.set(instanceId, pool);
    }
    return pool;
  }

  readonly #mapUrls = new Map<string, string>();

  /**
   * Learns every instance's URL (the map's, the adds of `plan`) and applies sql/ on each, so
   * the fence and job tables exist everywhere. Idempotent; start, run and abort call it.
   */
  async prepare(plan?: RebalancePlan): Promise<void> {
    const map = await this.map();
    for (const i of map.instances) if (!this.#mapUrls.has(i.id)) this.#mapUrls.set(i.id, i.url);
    for (const add of plan?.adds ?? []) this.#mapUrls.set(add.id, add.url);
    const ids = [...this.#mapUrls.keys()];
    await Promise.all(ids.map((id) => migrate(this.urlOf(id, this.#mapUrls.get(id)), this.options.log)));
  }
}

interface Comparison {
  source: Map<number, SlotDigest>;
  target: Map<number, SlotDigest>;
  equal: boolean;
  differ: number[];
}

interface TableDigest {
  rows: number;
  sum: bigint;
}

/** The tables' digests of some slots, added up per slot into each slot's SlotDigest. */
class SlotTotals {
  readonly #totals: Map<number, TableDigest>;

  constructor(slots: readonly number[]) {
    this.#totals = new Map(slots.map((s) => [s, { rows: 0, sum: 0n }]));
  }

  add(table: Map<number, TableDigest>): void {
    for (const [slot, d] of table) {
      const t = this.#totals.get(slot);
      if (!t) continue;
      t.rows += d.rows;
      t.sum += d.sum;
    }
  }

  digests(): Map<number, SlotDigest> {
    return new Map([...this.#totals].map(([slot, t]) => [slot, { rows: t.rows, checksum: t.sum.toString(16) }]));
  }
}

function sameDigest(a: TableDigest | undefined, b: TableDigest | undefined): boolean {
  return (a?.rows ?? 0) === (b?.rows ?? 0) && (a?.sum ?? 0n) === (b?.sum ?? 0n);
}

/**
 * Rows past `after` in primary-key order, spelled out column by column: MariaDB reads a range
 * of the key for (a > ? OR (a = ? AND b > ?)), where a row comparison (a, b) > (?, ?) can make
 * it scan from the start on every page.
 */
export function keyAfter(pk: readonly string[], after: readonly unknown[]): { sql: string; params: unknown[] } {
  const [first, ...rest] = pk;
  const [value, ...more] = after;
  if (rest.length === 0) return { sql: `${first} > ?`, params: [value] };
  const inner = keyAfter(rest, more);
  return { sql: `(${first} > ? OR (${first} = ? AND ${inner.sql}))`, params: [value, value, ...inner.params] };
}

/** Same columns, same values → same hash, whichever instance the row is read from. */
function rowHash(table: string, row: RowDataPacket): number {
  const columns = Object.keys(row).sort();
  return crc32(JSON.stringify([table, ...columns.map((c) => [c, normalize(row[c])])]));
}

function normalize(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value.toString("base64");
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

/** A primary key's values as one comparable string (the record keeps them as text). */
function keyText(values: readonly unknown[]): string {
  return JSON.stringify(values.map((v) => (v === null || v === undefined ? null : String(v))));
}

function pkOf(placement: TablePlacement, row: RowDataPacket): string {
  return JSON.stringify(placement.pk.map((c) => row[c]));
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

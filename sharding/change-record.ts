import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import type { Pool } from "../src/storage/mysql/pool.js";
import { slotOf } from "../src/storage/sharded/shard-map.js";
import type { TablePlacement } from "./placements.js";

/**
 * The change record of a rebalance, kept the way pt-online-schema-change keeps one: while a
 * job moves slots off an instance, triggers on every placed table there write the primary key
 * of each row inserted, updated or deleted in those slots to `slot_changes`, inside the
 * writer's own transaction. After the bulk copy, and again under the fence, the rebalancer
 * reads only those keys instead of comparing the slots again row by row.
 *
 * Why triggers and not the binary log: the binlog is off by default on MariaDB (and on the
 * machines this runs on), and reading it needs replication rights and a client library;
 * triggers need neither, and cost the writers one small insert per row only while a job runs,
 * only for the slots it moves.
 */

const EVENTS = [
  { event: "INSERT", suffix: "ins" },
  { event: "UPDATE", suffix: "upd" },
  { event: "DELETE", suffix: "del" },
] as const;

function triggerName(table: string, suffix: string): string {
  return `slot_changes_${table}_${suffix}`;
}

/** The keys that changed since a mark, per table, and how far the record is complete. */
export interface ChangedKeys {
  /** Primary-key values (as text) of the rows to make equal, by table, each key once. */
  byTable: Map<string, unknown[][]>;
  /** Entries read (a row changed twice counts twice). */
  entries: number;
  /**
   * The highest id up to which every entry was read: ids are taken in order when a trigger
   * fires, so an id missing below a later one belongs to a writer that has not committed yet
   * (or rolled back), and the next read must start before it.
   */
  complete: number;
}

/**
 * Starts recording on one instance: returns the mark (every change recorded from now on has
 * a larger id). The mark is taken before the triggers exist, and each CREATE TRIGGER waits
 * for the transactions that already wrote its table, so every write not recorded has
 * committed before this returns: a copy that starts afterwards sees it.
 */
export async function startChangeRecord(
  pool: Pool,
  placements: readonly TablePlacement[],
  slots: readonly number[],
  slotCount: number,
): Promise<number> {
  await stopChangeRecord(pool, placements);
  const [marker] = await pool.query<ResultSetHeader>(
    "INSERT INTO slot_changes (tbl, slot, pk) VALUES ('', NULL, '[]')",
  );
  for (const placement of placements) {
    for (const { event, suffix } of EVENTS) {
      await pool.query(
        `CREATE TRIGGER ${triggerName(placement.table, suffix)} AFTER ${event} ON ${placement.table} FOR EACH ROW ${triggerBody(placement, event, slots, slotCount)}`,
      );
    }
  }
  return marker.insertId;
}

/** Whether every trigger of the record is in place on this instance (a resumed job checks). */
export async function isRecording(pool: Pool, placements: readonly TablePlacement[]): Promise<boolean> {
  const [rows] = await pool.query<RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'slot\\_changes\\_%'",
  );
  return Number(rows[0]?.n) === placements.length * EVENTS.length;
}

/** Drops the triggers and the recorded keys (end of a job, or its abort). */
export async function stopChangeRecord(pool: Pool, placements: readonly TablePlacement[]): Promise<void> {
  for (const placement of placements) {
    for (const { suffix } of EVENTS) await pool.query(`DROP TRIGGER IF EXISTS ${triggerName(placement.table, suffix)}`);
  }
  await pool.query("DELETE FROM slot_changes");
}

/** The keys of these slots' rows changed after `mark`, read in pages of `pageRows`. */
export async function changesSince(
  pool: Pool,
  placements: readonly TablePlacement[],
  mark: number,
  slots: readonly number[],
  slotCount: number,
  pageRows: number,
): Promise<ChangedKeys> {
  const wanted = new Set(slots);
  const byName = new Map(placements.map((p) => [p.table, p]));
  const keys = new Map<string, Map<string, unknown[]>>();
  const [[step]] = (await pool.query<RowDataPacket[]>("SELECT @@auto_increment_increment AS n")) as [
    RowDataPacket[],
    unknown,
  ];
  const increment = Number(step?.n ?? 1);
  let entries = 0;
  let complete = mark;
  let contiguous = true;
  let after = mark;
  for (;;) {
    const [rows] = await pool.query<RowDataPacket[]>(
      "SELECT id, tbl, slot, pk FROM slot_changes WHERE id > ? ORDER BY id LIMIT ?",
      [after, pageRows],
    );
    for (const row of rows) {
      const id = Number(row.id);
      if (contiguous && id === complete + increment) complete = id;
      else contiguous = false;
      after = id;
      const placement = byName.get(String(row.tbl));
      if (!placement) continue;
      const pk = JSON.parse(String(row.pk)) as unknown[];
      const slot = row.slot === null ? slotOf(placement.keyOf(keyRow(placement, pk)), slotCount) : Number(row.slot);
      if (!wanted.has(slot)) continue;
      entries += 1;
      const table = keys.get(placement.table) ?? new Map<string, unknown[]>();
      keys.set(placement.table, table);
      table.set(String(row.pk), pk);
    }
    if (rows.length < pageRows) break;
  }
  return { byTable: new Map([...keys].map(([t, m]) => [t, [...m.values()]])), entries, complete };
}

/** A row holding only the primary key's columns, enough for keyOf (every key is in the pk). */
function keyRow(placement: TablePlacement, pk: readonly unknown[]): RowDataPacket {
  return Object.fromEntries(placement.pk.map((c, i) => [c, pk[i]])) as RowDataPacket;
}

function triggerBody(
  placement: TablePlacement,
  event: "INSERT" | "UPDATE" | "DELETE",
  slots: readonly number[],
  slotCount: number,
): string {
  const record = (row: "NEW." | "OLD.") => {
    const pk = `JSON_ARRAY(${placement.pk.map((c) => `CAST(${row}${c} AS CHAR)`).join(", ")})`;
    if (!placement.keySql) {
      // A folded name or email: its slot has no SQL expression, so every change is recorded
      // and placed when read (these tables change only when users register or rename).
      return `INSERT INTO slot_changes (tbl, slot, pk) VALUES ('${placement.table}', NULL, ${pk});`;
    }
    const slot = `CRC32(${placement.keySql(row)}) % ${slotCount}`;
    return `IF ${slot} IN (${slots.join(", ")}) THEN INSERT INTO slot_changes (tbl, slot, pk) VALUES ('${placement.table}', ${slot}, ${pk}); END IF;`;
  };
  if (event === "INSERT") return `BEGIN ${record("NEW.")} END`;
  if (event === "DELETE") return `BEGIN ${record("OLD.")} END`;
  // An update records the new key, and the old one too when the key itself changed.
  const same = placement.pk.map((c) => `OLD.${c} <=> NEW.${c}`).join(" AND ");
  return `BEGIN ${record("NEW.")} IF NOT (${same}) THEN ${record("OLD.")} END IF; END`;
}

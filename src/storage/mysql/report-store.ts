import type { RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, isDecimalId, storedId } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import type { ReportRecord, ReportStore } from "../ports.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";

/** A report's placement key: its id, so a report is one row on one shard. */
export function reportKey(reportId: string): string {
  return `report:${reportId}`;
}

/**
 * Reports in MySQL, each on the instance of its id ("report:" + id); the newest are read from
 * every instance (one query each, in parallel, by idx_reports_newest) and merged.
 */
export class MysqlReportStore implements ReportStore {
  constructor(private readonly placement: KeyPlacement) {}

  /** One INSERT on the report's instance. */
  async create(r: ReportRecord): Promise<void> {
    checkReport(r);
    await this.call("report", () =>
      this.placement.write(reportKey(r.reportId), (db) =>
        db.query(
          `INSERT INTO reports (report_id, reporter, uid, conv_id, seq, snapshot, reason, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [r.reportId, r.reporter, r.uid, r.convId, r.seq, r.snapshot, r.reason, r.createdAt],
        ),
      ),
    );
  }

  async recent(beforeMs: number, limit: number): Promise<ReportRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (max === 0) return [];
    const before = Math.max(0, Math.floor(beforeMs) || 0);
    const pages = await this.call("reports", () =>
      Promise.all(
        this.placement.instances().map(async (id) => {
          const [rows] = await this.placement.pool(id).query<RowDataPacket[]>(
            `SELECT report_id, reporter, uid, conv_id, seq, snapshot, reason, created_at FROM reports
              WHERE ? = 0 OR created_at < ? ORDER BY created_at DESC, report_id DESC LIMIT ?`,
            [before, before, max],
          );
          return rows.map(toReport);
        }),
      ),
    );
    return newestFirst(pages.flat()).slice(0, max);
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

/** What the columns would refuse or misread (INVALID_ARGUMENT). */
export function checkReport(r: ReportRecord): void {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, why);
  for (const id of [r.reportId, r.reporter, r.uid]) if (!isDecimalId(id)) throw bad(`"${id}" is not a decimal id`);
  if (typeof r.convId !== "string" || !fitsChars(r.convId, COLUMN_CHARS.convId)) throw bad("bad conversation id");
  if (!Number.isSafeInteger(r.seq) || r.seq < 0) throw bad("seq must be >= 0");
  if (!Number.isSafeInteger(r.createdAt)) throw bad("createdAt must be an integer");
  if (typeof r.snapshot !== "string" || typeof r.reason !== "string") throw bad("snapshot and reason are text");
}

/** Newest first; reports of the same millisecond by id, the larger (later) first. */
export function newestFirst(reports: ReportRecord[]): ReportRecord[] {
  return reports.sort((a, b) => {
    if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
    const [x, y] = [BigInt(a.reportId), BigInt(b.reportId)];
    return x < y ? 1 : x > y ? -1 : 0;
  });
}

function toReport(row: RowDataPacket): ReportRecord {
  return {
    reportId: storedId(row.report_id),
    reporter: storedId(row.reporter),
    uid: storedId(row.uid),
    convId: String(row.conv_id),
    seq: Number(row.seq),
    snapshot: String(row.snapshot),
    reason: String(row.reason),
    createdAt: Number(row.created_at),
  };
}

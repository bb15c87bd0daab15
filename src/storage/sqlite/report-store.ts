import { ErrorCode } from "../../errors.js";
import { checkReport, newestFirst } from "../mysql/report-store.js";
import type { ReportRecord, ReportStore, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { requireCanonicalId } from "./uids.js";

interface ReportRow {
  report_id: string;
  reporter: Uid;
  uid: Uid;
  conv_id: string;
  seq: number;
  snapshot: string;
  reason: string;
  created_at: number;
}

/** Reports in the SQLite file: the same table as MysqlReportStore's. */
export class SqliteReportStore implements ReportStore {
  readonly #insert;
  readonly #recent;

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, string, string, number, string, string, number]>(
      `INSERT INTO reports (report_id, reporter, uid, conv_id, seq, snapshot, reason, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // Ids are TEXT: the longer one is the larger, as BIGINT order has it (newestFirst re-sorts anyway).
    this.#recent = db.prepare<[number, number, number], ReportRow>(
      `SELECT report_id, reporter, uid, conv_id, seq, snapshot, reason, created_at FROM reports
        WHERE ? = 0 OR created_at < ?
        ORDER BY created_at DESC, length(report_id) DESC, report_id DESC LIMIT ?`,
    );
  }

  async create(r: ReportRecord): Promise<void> {
    checkReport(r);
    const [id, reporter, uid] = [r.reportId, r.reporter, r.uid].map(requireCanonicalId) as [string, string, string];
    run(() => this.#insert.run(id, reporter, uid, r.convId, r.seq, r.snapshot, r.reason, r.createdAt));
  }

  async recent(beforeMs: number, limit: number): Promise<ReportRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (max === 0) return [];
    const before = Math.max(0, Math.floor(beforeMs) || 0);
    const rows = run(() => this.#recent.all(before, before, max));
    return newestFirst(
      rows.map((r) => ({
        reportId: r.report_id,
        reporter: r.reporter,
        uid: r.uid,
        convId: r.conv_id,
        seq: Number(r.seq),
        snapshot: r.snapshot,
        reason: r.reason,
        createdAt: Number(r.created_at),
      })),
    );
  }
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite reports", work);
}

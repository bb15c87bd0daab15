import type { RowDataPacket } from "mysql2/promise";
import { ErrorCode } from "../../errors.js";
import type { BulkImporter, ImportedConversation, UserRecord } from "../ports.js";
import { USER_COLUMNS } from "../user-row.js";
import { mysqlCall } from "./errors.js";
import { MESSAGE_COLUMNS } from "./message-store.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";
import { inTransaction, retryingDeadlocks } from "./transaction.js";

/** Rows per multi-row INSERT: large enough to amortise a round trip, well under max_allowed_packet. */
const ROWS_PER_STATEMENT = 2000;

/**
 * Writes a batch of history inside conn's transaction: the conversation rows (a new 1:1 one is
 * created), their last seqs read under lock, the messages after them, the new last seqs, and
 * every member's cursors at the end. Five to six statements for the whole batch, plus one per
 * 2,000 messages.
 */
export async function importHistoryIn(conn: Connection, unsorted: ImportedConversation[], now: number): Promise<void> {
  if (unsorted.length === 0) return;
  // Rows locked in one order (the primary key's) by every batch: concurrent batches wait, not deadlock.
  const batch = [...unsorted].sort((a, b) => (a.convId < b.convId ? -1 : a.convId > b.convId ? 1 : 0));
  const convIds = batch.map((c) => c.convId);
  const direct = batch.filter((c) => c.kind === 1);
  if (direct.length > 0) {
    await conn.query("INSERT IGNORE INTO conversations (conv_id, kind, last_seq, created_at) VALUES ?", [
      direct.map((c) => [c.convId, 1, 0, now]),
    ]);
  }
  const [rows] = await conn.query<RowDataPacket[]>(
    "SELECT conv_id, last_seq FROM conversations WHERE conv_id IN (?) FOR UPDATE",
    [convIds],
  );
  const lastSeq = new Map(rows.map((r) => [String(r.conv_id), Number(r.last_seq)]));
  const missing = convIds.find((id) => !lastSeq.has(id));
  if (missing) throw new Error(`conversation ${missing} does not exist (create the group first)`);

  const messageRows: unknown[][] = [];
  const ends: [string, number][] = [];
  const cursors: unknown[][] = [];
  for (const c of batch) {
    let seq = lastSeq.get(c.convId) ?? 0;
    for (const m of c.messages) {
      seq += 1;
      messageRows.push([
        c.convId,
        seq,
        m.msgId,
        m.sender,
        m.recipient,
        m.clientMsgId,
        m.kind,
        m.text,
        m.sentAtMs,
        null,
      ]);
    }
    ends.push([c.convId, seq]);
    for (const uid of new Set(c.members)) cursors.push([c.convId, uid, seq, seq, now]);
  }
  for (let i = 0; i < messageRows.length; i += ROWS_PER_STATEMENT) {
    await conn.query(`INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES ?`, [
      messageRows.slice(i, i + ROWS_PER_STATEMENT),
    ]);
  }
  // Only last_seq changes: the rows exist (read above under lock).
  await conn.query(
    `INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES ?
     ON DUPLICATE KEY UPDATE last_seq = VALUES(last_seq)`,
    [ends.map(([convId, seq]) => [convId, 0, seq, now])],
  );
  for (let i = 0; i < cursors.length; i += ROWS_PER_STATEMENT) {
    await conn.query(
      `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES ?
       ON DUPLICATE KEY UPDATE delivered_seq = GREATEST(delivered_seq, VALUES(delivered_seq)),
                               read_seq = GREATEST(read_seq, VALUES(read_seq))`,
      [cursors.slice(i, i + ROWS_PER_STATEMENT)],
    );
  }
}

/** Users rows in multi-row statements (emails as the user stores keep them: trimmed, lower case). */
export async function importUsersIn(conn: Pick<Connection, "query">, users: UserRecord[]): Promise<void> {
  for (let i = 0; i < users.length; i += ROWS_PER_STATEMENT) {
    await conn.query(`INSERT INTO users (${USER_COLUMNS}) VALUES ?`, [
      users
        .slice(i, i + ROWS_PER_STATEMENT)
        .map((u) => [u.uid, u.name, u.email.trim().toLowerCase(), u.passwordHash, u.createdAt]),
    ]);
  }
}

/** BulkImporter on one MySQL database: a batch is one transaction. */
export class MysqlBulkImporter implements BulkImporter {
  /**
   * deadlockRetries: config.MYSQL_DEADLOCK_RETRIES. A batch that loses a deadlock (to live
   * traffic) is run again whole: InnoDB rolled it back whole.
   */
  constructor(
    private readonly pool: Pool,
    private readonly deadlockRetries = 5,
  ) {}

  importUsers(users: UserRecord[]): Promise<void> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "user import", () =>
      inTransaction(this.pool, (conn) => importUsersIn(conn, users)),
    );
  }

  importHistory(batch: ImportedConversation[]): Promise<void> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "history import", () =>
      retryingDeadlocks(this.deadlockRetries, () =>
        inTransaction(this.pool, (conn) => importHistoryIn(conn, batch, Date.now())),
      ),
    );
  }
}

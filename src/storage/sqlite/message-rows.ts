import { AppError, ErrorCode } from "../../errors.js";
import { fileRefFromColumn } from "../file-ref.js";
import { type ModelColumns, type ModelLookups, withModelColumns } from "../message-model.js";
import type { StoredMessage, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall, sqliteCode, sqliteError } from "./errors.js";

/** What an append writes; the state columns (edits, recall, reactions) start at their defaults. */
export const INSERT_COLUMNS =
  "conv_id, seq, msg_id, sender, recipient, client_msg_id, kind, body, sent_at, file_json, extras_json";
/** What a read answers: the inserted columns and the state later events change. */
export const MESSAGE_COLUMNS = `${INSERT_COLUMNS}, edit_count, edited_at, recalled, reactions_json`;

/** A messages row; a fresh append's has no state columns (absent: their defaults). */
export interface MessageRow extends ModelColumns {
  conv_id: string;
  seq: number;
  msg_id: string;
  sender: Uid;
  recipient: Uid;
  client_msg_id: string;
  kind: number;
  body: string;
  sent_at: number;
  file_json: string | null;
  extras_json: string | null;
}

export function toChatMessage(row: MessageRow): StoredMessage {
  const message: StoredMessage = {
    convId: row.conv_id,
    msgId: row.msg_id,
    seq: Number(row.seq),
    sender: row.sender,
    recipient: row.recipient,
    clientMsgId: row.client_msg_id,
    kind: Number(row.kind),
    text: row.body,
    sentAtMs: String(row.sent_at),
    file: fileRefFromColumn(row.file_json),
  };
  return withModelColumns(message, row);
}

type InsertParams = [
  string,
  number,
  string,
  string,
  string,
  string,
  number,
  string,
  number,
  string | null,
  string | null,
];

/**
 * The one INSERT of a message row (1:1, group, event). A msg_id already taken is a generator
 * fault, answered INTERNAL; the client key's conflict stays a SqliteError, for the caller that
 * answers the stored message instead.
 */
export function messageInserter(db: SqliteDatabase): (row: MessageRow) => void {
  const insert = db.prepare<InsertParams>(
    `INSERT INTO messages (${INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  return (row) => {
    try {
      insert.run(
        row.conv_id,
        row.seq,
        row.msg_id,
        row.sender,
        row.recipient,
        row.client_msg_id,
        row.kind,
        row.body,
        row.sent_at,
        row.file_json,
        row.extras_json,
      );
    } catch (err) {
      if (sqliteCode(err) === "SQLITE_CONSTRAINT_UNIQUE" && /messages\.msg_id/.test((err as Error).message)) {
        throw new AppError(ErrorCode.INTERNAL, `msg_id ${row.msg_id} is already used by another message`);
      }
      throw err;
    }
  };
}

/**
 * The lookups completeForReader asks for, each one statement over a json_each list. They run
 * outside the page's read transaction: a change committed in between shows in the completion
 * (as it would on the next read), never a half-done one.
 */
export class SqliteModelLookups implements ModelLookups {
  readonly #bySeqs;
  readonly #reactionsOf;
  readonly #hiddenOf;

  constructor(db: SqliteDatabase) {
    this.#bySeqs = db.prepare<[string, string], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq IN (SELECT value FROM json_each(?))`,
    );
    this.#reactionsOf = db.prepare<[string, string, string], { seq: number; emoji: string }>(
      `SELECT seq, emoji FROM message_reactions
        WHERE conv_id = ? AND uid = ? AND seq IN (SELECT value FROM json_each(?))`,
    );
    this.#hiddenOf = db.prepare<[string, string, string], { seq: number }>(
      "SELECT seq FROM message_hidden WHERE conv_id = ? AND uid = ? AND seq IN (SELECT value FROM json_each(?))",
    );
  }

  async bySeqs(convId: string, seqs: number[]): Promise<StoredMessage[]> {
    return storageCall(() => this.#bySeqs.all(convId, JSON.stringify(seqs)).map(toChatMessage));
  }

  async reactionsOf(convId: string, uid: Uid, seqs: number[]): Promise<{ seq: number; emoji: string }[]> {
    const rows = storageCall(() => this.#reactionsOf.all(convId, uid, JSON.stringify(seqs)));
    return rows.map((r) => ({ seq: Number(r.seq), emoji: r.emoji }));
  }

  async hiddenOf(convId: string, uid: Uid, seqs: number[]): Promise<number[]> {
    return storageCall(() => this.#hiddenOf.all(convId, uid, JSON.stringify(seqs)).map((r) => Number(r.seq)));
  }
}

const STORE_NAME = "sqlite message store";

/** A synchronous read or write of the message tables, "cannot serve now" answered STORAGE_UNAVAILABLE. */
export function storageCall<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, STORE_NAME, work);
}

/** An error of a group-committed write as its caller sees it. */
export function storageError(err: unknown): unknown {
  return sqliteError(ErrorCode.STORAGE_UNAVAILABLE, STORE_NAME, err);
}

import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, directConvMembers, isDecimalId, requireChars, storedId } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import { Batcher } from "../batcher.js";
import { refuseBlockedChange } from "../blocks.js";
import { fileRefFromColumn, fileRefToColumn } from "../file-ref.js";
import { DISSOLVED_GROUP_CONVERSATION } from "../group-moderation.js";
import {
  completeForReader,
  extrasToColumn,
  type ModelColumns,
  type ModelLookups,
  reactionsToColumn,
  recalledExtras,
  withModelColumns,
} from "../message-model.js";
import {
  type ChangeOutcome,
  type HistoryQuery,
  isEventKind,
  type MessageChange,
  type MessageEffect,
  type MessageStore,
  type NewMessage,
  STORED_KIND,
  type StoredMessage,
  type StoredReactionCount,
  type Uid,
} from "../ports.js";
import { afterChangeRow, afterSendRow, OUTBOX_COLUMNS, outboxValues } from "../webhook-outbox.js";
import { isUnreachable, mysqlCall, mysqlCode, mysqlError } from "./errors.js";
import type { Queryable } from "./friend-store.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";
import { type FenceCheck, inSentTransaction, inTransaction, retryingDeadlocks } from "./transaction.js";

/** A derived table of n (conv_id, uid, seq) rows, three placeholders each. */
function cursorRows(n: number): string {
  const first = "SELECT CAST(? AS CHAR(64)) AS conv_id, CAST(? AS UNSIGNED) AS uid, CAST(? AS UNSIGNED) AS seq";
  return first + " UNION ALL SELECT ?, ?, ?".repeat(n - 1);
}

/** conversations.kind of a 1:1 conversation. */
const DIRECT_CONVERSATION = 1;

/** The columns every insert of a message writes (the bulk import's too). */
export const MESSAGE_COLUMNS = "conv_id, seq, msg_id, sender, recipient, client_msg_id, kind, body, sent_at, file_json";
/** What an append writes: the base and its extras (NULL for a plain message, see message-model.ts). */
export const NEW_MESSAGE_COLUMNS = `${MESSAGE_COLUMNS}, extras_json`;
/** What every read answers: the base and the message model's columns. */
export const STORED_MESSAGE_COLUMNS = `${NEW_MESSAGE_COLUMNS}, edit_count, edited_at, recalled, reactions_json`;

/** One statement and its values, for callers that send several in one round trip. */
export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * The sender's own cursors after it stored the message at seq (a 1:1 or group message, an
 * event): delivered passes it only when the sender had everything before it (a jump would skip
 * an incoming message it has not acked yet); its own message counts as read.
 */
export function senderCursor(convId: string, sender: Uid, seq: number): Statement {
  return {
    sql: `UPDATE conversation_members
             SET delivered_seq = IF(delivered_seq = ? - 1, ?, delivered_seq), read_seq = GREATEST(read_seq, ?)
           WHERE conv_id = ? AND uid = ?`,
    params: [seq, seq, seq, convId, sender],
  };
}

/**
 * A new message's row in the caller's transaction, and with `afterSend` its webhook outbox row
 * in the same round trip (so the outbox costs the append no extra wait).
 */
export async function insertMessageRow(
  db: Queryable,
  message: StoredMessage,
  extras: string | null,
  afterSend: boolean,
): Promise<void> {
  const row = messageRow(message, extras);
  if (!afterSend) {
    await db.query(`INSERT INTO messages (${NEW_MESSAGE_COLUMNS}) VALUES ?`, [[row]]);
    return;
  }
  await db.query(
    `INSERT INTO messages (${NEW_MESSAGE_COLUMNS}) VALUES ?;\nINSERT INTO webhook_outbox (${OUTBOX_COLUMNS}) VALUES ?`,
    [[row], [outboxValues(afterSendRow(message, Date.now()))]],
  );
}

/** Sends the statements in one round trip and answers each one's result, in order. */
async function sendStatements(db: Queryable, statements: Statement[]): Promise<RowDataPacket[][]> {
  const [results] = await db.query<RowDataPacket[][]>(
    statements.map((s) => s.sql).join(";\n"),
    statements.flatMap((s) => s.params),
  );
  // One statement answers its own result, several an array of them.
  return statements.length === 1 ? [results as unknown as RowDataPacket[]] : results;
}

export interface MysqlMessageStoreOptions {
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries?: number;
  /**
   * Called first in every write transaction with the conversation ids it writes (the sharded
   * adapter's slot fence: it throws to refuse the write).
   */
  guard?: (conn: Connection, convIds: readonly string[]) => Promise<void>;
  /** The same guard as a statement, sent with the group commit's first round trip. */
  fenceCheck?: (convIds: readonly string[]) => FenceCheck | undefined;
  /** config.MYSQL_APPEND_BATCH_MAX: most messages in one group-commit transaction (1: none). */
  batchMax?: number;
  /** config.MYSQL_ACK_BATCH_MAX: most users' delivery cursors in one transaction (1: none). */
  ackBatchMax?: number;
  /** config.MYSQL_APPEND_BATCHES_IN_FLIGHT: group-commit transactions at once on this pool. */
  batchConcurrency?: number;
  /** Told the size of each append and ack batch (a metric). */
  observeBatch?: (op: "append" | "ack", size: number) => void;
  /**
   * Webhooks (issue 18): each append also writes the message's after-send row to
   * webhook_outbox in its own transaction (the batch's: one more multi-row insert in the same
   * round trip). Off when no endpoint subscribes to message.after_send: nothing more is written.
   */
  afterSendOutbox?: boolean;
}

type Appended = { message: StoredMessage; duplicate: boolean };
/** One ack request: the highest seq acked per conversation. */
type AckItem = { uid: Uid; wanted: Map<string, number> };

/**
 * Messages of the conversations on one MySQL shard. Every answer of `append` comes after
 * COMMIT, so an acked message is durable; a failed COMMIT answers STORAGE_UNAVAILABLE and the
 * client's resend (same clientMsgId) is then deduplicated.
 */
export class MysqlMessageStore implements MessageStore {
  private readonly deadlockRetries: number;
  private readonly guard: MysqlMessageStoreOptions["guard"];
  private readonly fenceCheck: MysqlMessageStoreOptions["fenceCheck"];
  private readonly afterSendOutbox: boolean;
  private readonly batcher: Batcher<NewMessage, Appended>;
  private readonly ackBatcher: Batcher<AckItem, void> | undefined;
  /** What completing a page for its reader looks up (message-model.ts). */
  private readonly lookups: ModelLookups;

  constructor(
    private readonly pool: Pool,
    options: MysqlMessageStoreOptions = {},
  ) {
    this.deadlockRetries = options.deadlockRetries ?? 5;
    this.guard = options.guard;
    this.fenceCheck = options.fenceCheck;
    this.afterSendOutbox = options.afterSendOutbox ?? false;
    this.lookups = readerLookups(pool);
    const batchMax = options.batchMax ?? 1;
    const inFlight = options.batchConcurrency ?? 2;
    const observe = options.observeBatch;
    // Keyed by conversation: one ordered writer per conversation, so appends called in order
    // take their seqs in that order, while other conversations share the next transaction.
    this.batcher = new Batcher(
      (ms) => this.appendBatch(ms),
      batchMax,
      inFlight,
      (m) => m.convId,
      observe && ((size) => observe("append", size)),
    );
    const ackBatchMax = options.ackBatchMax ?? batchMax;
    this.ackBatcher =
      ackBatchMax > 1
        ? new Batcher(
            (acks) => this.ackBatch(acks),
            ackBatchMax,
            inFlight,
            undefined,
            observe && ((size) => observe("ack", size)),
          )
        : undefined;
  }

  /** Appends of one conversation are stored in the order of the calls (seq order = call order). */
  async append(m: NewMessage): Promise<Appended> {
    validateNewMessage(m);
    return this.appendValidated(m);
  }

  /** append() for a message its caller already checked with validateNewMessage (the sharded adapter). */
  appendValidated(m: NewMessage): Promise<Appended> {
    return this.batcher.submit(m);
  }

  private appendOne(m: NewMessage): Promise<Appended> {
    return storageCall(async () => {
      // No lookup of the clientMsgId first: a resend is rare, and uk_messages_client refuses it
      // inside the transaction (which then rolls back its seq), so the common case saves a
      // round trip.
      try {
        const message = await retryingDeadlocks(this.deadlockRetries, () =>
          inTransaction(this.pool, async (conn) => {
            await this.guard?.(conn, [m.convId]);
            return this.insert(conn, m);
          }),
        );
        return { message, duplicate: false };
      } catch (err) {
        const blocked = err instanceof AppError && err.code === ErrorCode.BLOCKED;
        if (mysqlCode(err) !== "ER_DUP_ENTRY" && !blocked) throw err;
        // A resend, or two racing: uk_messages_client let one of them in. (Refused for a block,
        // a resend of a message stored before it is still answered as the duplicate it is.)
        const winner = await this.byClientMsgId(m);
        if (winner) return { message: winner, duplicate: true };
        if (blocked) throw err;
        throw new AppError(ErrorCode.INTERNAL, `msg_id ${m.msgId} is already used by another message`);
      }
    });
  }

  /**
   * Group commit: the messages of one batch in one transaction of two round trips, one
   * multi-row statement per table. If the batch is refused as a whole (a resend hitting
   * uk_messages_client, a fenced slot, a lost deadlock), each message goes again alone, in
   * order, so only the message at fault fails and a resend is answered as a duplicate.
   */
  private async appendBatch(ms: NewMessage[]): Promise<PromiseSettledResult<Appended>[]> {
    try {
      const messages = await retryingDeadlocks(this.deadlockRetries, () => this.commitBatch(ms));
      return messages.map((message) => ({ status: "fulfilled", value: { message, duplicate: false } }));
    } catch (err) {
      if (isUnreachable(err)) return refusedAll(ms, err);
      // Else one by one: an item the batch was refused for fails alone.
    }
    const outcomes: PromiseSettledResult<Appended>[] = [];
    for (const m of ms) {
      outcomes.push(
        await this.appendOne(m).then(
          (value) => ({ status: "fulfilled", value }) as const,
          (reason: unknown) => ({ status: "rejected", reason }) as const,
        ),
      );
    }
    return outcomes;
  }

  async pending(uid: Uid, limit: number): Promise<{ messages: StoredMessage[]; more: boolean }> {
    if (!isDecimalId(uid)) return { messages: [], more: false };
    return storageCall(async () => {
      // Walks the user's memberships (idx_members_uid) and compares cursors with last_seq, so
      // only conversations with something pending are read, each by a PK range.
      const [convs] = await this.pool.query<RowDataPacket[]>(
        `SELECT cm.conv_id, cm.delivered_seq, cm.hidden_count, c.last_seq, c.retained_from_seq
           FROM conversation_members cm FORCE INDEX (idx_members_uid)
           JOIN conversations c ON c.conv_id = cm.conv_id
          WHERE cm.uid = ? AND c.last_seq > cm.delivered_seq
          ORDER BY cm.conv_id`,
        [uid],
      );
      let remaining = Math.max(0, Math.floor(limit));
      let total = 0;
      const parts: string[] = [];
      const params: unknown[] = [];
      for (const conv of convs) {
        // Seqs the retention purge deleted are not waiting: the cursor reads from retained_from_seq.
        const from = Math.max(Number(conv.delivered_seq), Number(conv.retained_from_seq) - 1);
        const waiting = Number(conv.last_seq) - from;
        total += Math.max(0, waiting);
        if (remaining === 0 || waiting <= 0) continue;
        const take = Math.min(waiting, remaining);
        remaining -= take;
        parts.push(
          `(SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq LIMIT ?)`,
        );
        params.push(conv.conv_id, from, take);
      }
      if (parts.length === 0) return { messages: [], more: total > 0 };
      const [rows] = await this.pool.query<RowDataPacket[]>(parts.join(" UNION ALL "), params);
      const convOrder = new Map(convs.map((c, i) => [c.conv_id as string, i]));
      const read = rows
        .map(toChatMessage)
        .sort((a, b) => (convOrder.get(a.convId) ?? 0) - (convOrder.get(b.convId) ?? 0) || a.seq - b.seq);
      const hiding = new Set(convs.filter((c) => Number(c.hidden_count) > 0).map((c) => String(c.conv_id)));
      const messages = await completeForReader(uid, read, this.lookups, (convId) => hiding.has(convId));
      return { messages, more: total > messages.length };
    });
  }

  async ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void> {
    if (!isDecimalId(uid)) return;
    const wanted = new Map<string, number>();
    for (const { convId, seq } of cursors) {
      if (typeof convId !== "string" || !Number.isInteger(seq) || seq <= 0) continue;
      wanted.set(convId, Math.max(wanted.get(convId) ?? 0, seq));
    }
    if (wanted.size === 0) return;
    // A group message is acked by every member at once: those acks share one statement.
    if (this.ackBatcher) return this.ackBatcher.submit({ uid, wanted });
    return this.ackOne(uid, wanted);
  }

  /**
   * The acks of one batch: one read of the cursors and one UPDATE for every (conversation,
   * member) pair. A batch refused as a whole is retried one ack at a time.
   */
  private async ackBatch(acks: AckItem[]): Promise<PromiseSettledResult<void>[]> {
    if (acks.length > 1) {
      try {
        await this.ackMany(acks);
        return acks.map(() => ({ status: "fulfilled", value: undefined }));
      } catch (err) {
        if (isUnreachable(err)) return refusedAll(acks, err);
        // Else one by one: an ack the batch was refused for fails alone.
      }
    }
    const outcomes: PromiseSettledResult<void>[] = [];
    for (const { uid, wanted } of acks) {
      outcomes.push(
        await this.ackOne(uid, wanted).then(
          () => ({ status: "fulfilled", value: undefined }) as const,
          (reason: unknown) => ({ status: "rejected", reason }) as const,
        ),
      );
    }
    return outcomes;
  }

  private async ackMany(acks: AckItem[]): Promise<void> {
    const wanted = new Map<string, { convId: string; uid: Uid; seq: number }>();
    for (const { uid, wanted: perConv } of acks) {
      for (const [convId, seq] of perConv) {
        // Canonical decimal, as the database answers it (a uid like "007" is row 7).
        const key = `${convId} ${BigInt(uid)}`;
        wanted.set(key, { convId, uid, seq: Math.max(wanted.get(key)?.seq ?? 0, seq) });
      }
    }
    const list = [...wanted.values()];
    const convIds = [...new Set(list.map((w) => w.convId))].sort();
    const fence = this.fenceCheck?.(convIds);
    // Two round trips: the guard with a plain (non-locking) read of the cursors and last_seq,
    // then the UPDATE with COMMIT. The cursors go as a derived table joined on the primary key:
    // MariaDB's cost per cursor stays flat as the batch grows, where a row-constructor list,
    // (conv_id, uid) IN (...), cost three times as much at 64 and grows with the batch
    // (`npm run bench:store`, the ack rows).
    await retryingDeadlocks(this.deadlockRetries, () =>
      inSentTransaction(this.pool, async (conn) => {
        const [results] = await conn.query<RowDataPacket[][]>(
          [
            "START TRANSACTION",
            ...(fence ? [fence.sql] : []),
            `SELECT cm.conv_id, cm.uid, cm.delivered_seq, c.last_seq, w.seq
               FROM (${cursorRows(list.length)}) w
               JOIN conversation_members cm ON cm.conv_id = w.conv_id AND cm.uid = w.uid
               JOIN conversations c ON c.conv_id = cm.conv_id`,
          ].join(";\n"),
          [...(fence?.params ?? []), ...list.flatMap((w) => [w.convId, w.uid, w.seq])],
        );
        if (fence) fence.check(results[1] ?? []);
        const advances: { convId: string; uid: string; seq: number }[] = [];
        for (const row of results.at(-1) ?? []) {
          // last_seq only grows, so clamping to what this read saw is safe.
          const target = Math.min(Number(row.seq), Number(row.last_seq));
          if (target > Number(row.delivered_seq))
            advances.push({ convId: row.conv_id, uid: storedId(row.uid), seq: target });
        }
        if (advances.length === 0) {
          await conn.query("COMMIT");
          return;
        }
        // PK order, as every writer locks member rows (the derived table is read in its order).
        advances.sort((a, b) =>
          a.convId < b.convId ? -1 : a.convId > b.convId ? 1 : BigInt(a.uid) < BigInt(b.uid) ? -1 : 1,
        );
        await conn.query(
          `UPDATE conversation_members cm
             JOIN (${cursorRows(advances.length)}) w ON cm.conv_id = w.conv_id AND cm.uid = w.uid
              SET cm.delivered_seq = GREATEST(cm.delivered_seq, w.seq);
           COMMIT`,
          advances.flatMap((a) => [a.convId, a.uid, a.seq]),
        );
      }),
    );
  }

  private async ackOne(uid: Uid, wanted: Map<string, number>): Promise<void> {
    await storageCall(async () => {
      // A plain (non-locking) read of last_seq: ack then never waits on, or deadlocks with, an
      // append holding the conversation row. last_seq only grows, so clamping to an older
      // value is still safe.
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT cm.conv_id, cm.delivered_seq, c.last_seq
           FROM conversation_members cm
           JOIN conversations c ON c.conv_id = cm.conv_id
          WHERE cm.uid = ? AND cm.conv_id IN (?)`,
        [uid, [...wanted.keys()]],
      );
      const advances: [string, number][] = [];
      for (const row of rows) {
        const target = Math.min(wanted.get(row.conv_id) ?? 0, Number(row.last_seq));
        if (target > Number(row.delivered_seq)) advances.push([row.conv_id, target]);
      }
      if (advances.length === 0) return;
      const cases = advances.map(() => "WHEN ? THEN ?").join(" ");
      const update = (db: Pick<Pool, "query">) =>
        db.query(
          `UPDATE conversation_members
              SET delivered_seq = GREATEST(delivered_seq, CASE conv_id ${cases} ELSE 0 END)
            WHERE uid = ? AND conv_id IN (?)`,
          [...advances.flat(), uid, advances.map(([convId]) => convId)],
        );
      const guard = this.guard;
      await retryingDeadlocks(this.deadlockRetries, () =>
        guard
          ? inTransaction(this.pool, async (conn) => {
              await guard(
                conn,
                advances.map(([convId]) => convId),
              );
              await update(conn);
            })
          : update(this.pool).then(() => undefined),
      );
    });
  }

  async history(uid: Uid, convId: string, query: HistoryQuery): Promise<StoredMessage[]> {
    return (await this.historyPage(uid, convId, query)).messages;
  }

  /** Two reads: uid's member row (membership, deletions, cleared seq), then the page after the cleared seq. */
  async historyPage(
    uid: Uid,
    convId: string,
    query: HistoryQuery,
  ): Promise<{ messages: StoredMessage[]; firstSeq: number }> {
    if (!isDecimalId(uid)) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return storageCall(async () => {
      const reader = await this.reader(uid, convId);
      const page = await this.page(convId, query, reader.cleared);
      const messages = await completeForReader(uid, page, this.lookups, () => reader.hidden > 0);
      // Below retained_from_seq the retention purge deleted them: not gaps either.
      return { messages, firstSeq: Math.max(reader.cleared + 1, reader.retained) };
    });
  }

  /** A page of history as stored, in seq order, after `cleared` (the reader's cleared seq). */
  private async page(convId: string, query: HistoryQuery, cleared: number): Promise<StoredMessage[]> {
    const limit = Math.floor(query.limit);
    if (!(limit > 0)) return [];
    const afterSeq = Math.floor(query.afterSeq) || 0;
    const beforeSeq = Math.floor(query.beforeSeq) || 0;
    if (afterSeq > 0) {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
        [convId, Math.max(afterSeq, cleared), limit],
      );
      return rows.map(toChatMessage);
    }
    const [rows] =
      beforeSeq > 0
        ? await this.pool.query<RowDataPacket[]>(
            `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq < ? AND seq > ? ORDER BY seq DESC LIMIT ?`,
            [convId, beforeSeq, cleared, limit],
          )
        : await this.pool.query<RowDataPacket[]>(
            `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?`,
            [convId, cleared, limit],
          );
    return rows.map(toChatMessage).reverse();
  }

  async isMember(convId: string, uid: Uid): Promise<boolean> {
    if (typeof convId !== "string" || !isDecimalId(uid)) return false;
    // The member row alone: gate asks this for downloads, and its database user reads
    // conversation_members but no conversation or message (grants.ts).
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?",
        [convId, uid],
      );
      return rows.length > 0;
    });
  }

  async message(uid: Uid, convId: string, seq: number): Promise<StoredMessage | null> {
    if (!isDecimalId(uid) || typeof convId !== "string") throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return storageCall(async () => {
      const reader = await this.reader(uid, convId);
      // At or below the cleared seq: gone for this reader.
      if (!Number.isSafeInteger(seq) || seq <= reader.cleared) return null;
      const found = await this.lookups.bySeqs(convId, [seq]);
      const [message] = await completeForReader(uid, found, this.lookups, () => reader.hidden > 0);
      return message ?? null;
    });
  }

  /**
   * One transaction under the conversation row's lock: (1) the lock, the actor's membership and
   * the target, locked; (2) for a reaction, whether the actor has that emoji on it; (3) the
   * change, the event with the next seq, the actor's cursor and the target read back. A change
   * with nothing to do commits nothing and answers the target alone.
   */
  async change(c: MessageChange): Promise<ChangeOutcome> {
    if (!isDecimalId(c.actor)) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    if (typeof c.convId !== "string" || !Number.isSafeInteger(c.targetSeq) || c.targetSeq <= 0) {
      throw new AppError(ErrorCode.NOT_FOUND, "no such message");
    }
    return storageCall(async () => {
      const outcome = await retryingDeadlocks(this.deadlockRetries, () =>
        inTransaction(this.pool, async (conn) => {
          await this.guard?.(conn, [c.convId]);
          return changeIn(conn, c, this.afterSendOutbox);
        }),
      );
      return everyonesView(outcome, this.pool);
    });
  }

  async hide(uid: Uid, convId: string, seqs: number[]): Promise<void> {
    if (!isDecimalId(uid) || typeof convId !== "string") throw new AppError(ErrorCode.NOT_PARTICIPANT);
    const wanted = [...new Set(seqs.filter((s) => Number.isSafeInteger(s) && s > 0))].sort((a, b) => a - b);
    await storageCall(() =>
      retryingDeadlocks(this.deadlockRetries, () =>
        inTransaction(this.pool, async (conn) => {
          await this.guard?.(conn, [convId]);
          await hideIn(conn, uid, convId, wanted);
        }),
      ),
    );
  }

  /**
   * uid's member row of convId (with its hidden_count and cleared_seq, and the conversation's
   * retained_from_seq by its primary key), undefined when uid is not a member.
   */
  private async memberRow(convId: string, uid: Uid): Promise<RowDataPacket | undefined> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT cm.hidden_count, cm.cleared_seq, c.retained_from_seq
         FROM conversation_members cm LEFT JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.conv_id = ? AND cm.uid = ?`,
      [convId, uid],
    );
    return rows[0];
  }

  /**
   * How many messages uid deleted for itself in convId, and up to which seq it cleared the
   * history (0: not cleared), and the first seq the retention purge left (retained);
   * AppError(NOT_PARTICIPANT) if not a member.
   */
  private async reader(uid: Uid, convId: string): Promise<{ hidden: number; cleared: number; retained: number }> {
    const member = await this.memberRow(convId, uid);
    if (!member) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return {
      hidden: Number(member.hidden_count),
      cleared: Number(member.cleared_seq),
      retained: Number(member.retained_from_seq ?? 1),
    };
  }

  private async insert(conn: Connection, m: NewMessage): Promise<StoredMessage> {
    const now = Date.now();
    // An upsert rather than INSERT IGNORE + UPDATE: INSERT IGNORE takes a shared lock on the
    // existing row, and two appends upgrading shared locks to exclusive deadlock each other
    // on every busy conversation. The exclusive row lock held from here to COMMIT serializes
    // appends per conversation, which is what makes seqs gapless.
    // LAST_INSERT_ID(expr) hands the new seq back in the OK packet (insertId). The same round
    // trip reads the row's block mark (issue 17), locked by the upsert until COMMIT: a blocked
    // pair's message is refused here and rolls back with its seq.
    const [results] = await conn.query<RowDataPacket[][]>(
      `INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES (?, ?, LAST_INSERT_ID(1), ?)
       ON DUPLICATE KEY UPDATE last_seq = LAST_INSERT_ID(last_seq + 1);
       SELECT blocked, LAST_INSERT_ID() AS seq FROM conversations WHERE conv_id = ?`,
      [m.convId, DIRECT_CONVERSATION, now, m.convId],
    );
    const bumped = results[0] as unknown as ResultSetHeader;
    const conv = results[1]?.[0];
    if (Number(conv?.blocked ?? 0) !== 0) throw new AppError(ErrorCode.BLOCKED);
    // Except while a trigger sits on the table (a rebalance's change record): MariaDB then
    // answers insert id 0, but the session's LAST_INSERT_ID() still holds the seq.
    const seq = Number(bumped.insertId) || Number(conv?.seq);
    if (!(seq >= 1)) throw new AppError(ErrorCode.INTERNAL, `no seq for ${m.convId}`);
    // Member rows in uid order (the PK order) so concurrent writers lock them in one order.
    // The sender's delivered cursor moves past its own message only when it already had
    // everything before it: a jump would skip an incoming message it has not acked yet.
    const members = memberUids(m).map((uid) => {
      const own = uid === m.sender ? seq : 0;
      return [m.convId, uid, own, own, now];
    });
    await conn.query(
      `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES ?
       ON DUPLICATE KEY UPDATE ${MEMBER_CURSOR_UPDATE}`,
      [members],
    );
    const extras = extrasToColumn(m.extras);
    const message = storedMessage(m, seq, extras);
    await insertMessageRow(conn, message, extras, this.afterSendOutbox);
    return message;
  }

  /**
   * insert() for many messages in one transaction and two round trips: (1) begin, the slot
   * fence, bump each conversation's last_seq by its count and read it back with its block
   * mark; (2) member rows, message rows, commit. The conversation rows stay locked from (1) to
   * COMMIT, which is what keeps every seq gapless and this batch's seqs the last
   * counts.get(convId) ones.
   */
  private async commitBatch(ms: NewMessage[]): Promise<StoredMessage[]> {
    const now = Date.now();
    const counts = new Map<string, number>();
    for (const m of ms) counts.set(m.convId, (counts.get(m.convId) ?? 0) + 1);
    // Conversation rows in PK order, as every writer locks them, so batches cannot deadlock.
    const convIds = [...counts.keys()].sort();
    const fence = this.fenceCheck?.(convIds);
    return inSentTransaction(this.pool, async (conn) => {
      const [results] = await conn.query<RowDataPacket[][]>(
        [
          "START TRANSACTION",
          ...(fence ? [fence.sql] : []),
          `INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES ?
           ON DUPLICATE KEY UPDATE last_seq = last_seq + VALUES(last_seq)`,
          "SELECT conv_id, last_seq, blocked FROM conversations WHERE conv_id IN (?)",
        ].join(";\n"),
        [
          ...(fence?.params ?? []),
          convIds.map((convId) => [convId, DIRECT_CONVERSATION, counts.get(convId), now]),
          convIds,
        ],
      );
      if (fence) fence.check(results[1] ?? []);
      // A blocked pair (issue 17): the whole batch rolls back and goes again one by one, where
      // only that conversation's messages are refused.
      if ((results.at(-1) ?? []).some((row) => Number(row.blocked) !== 0)) throw new AppError(ErrorCode.BLOCKED);
      const { members, messages, rows } = this.batchRows(ms, results.at(-1) ?? [], counts, now);
      // The batch's after-send rows ride in the same round trip, before COMMIT (webhooks).
      const outbox = this.afterSendOutbox ? messages.map((m) => outboxValues(afterSendRow(m, now))) : [];
      await conn.query(
        [
          `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES ?
           ON DUPLICATE KEY UPDATE ${MEMBER_CURSOR_UPDATE}`,
          `INSERT INTO messages (${NEW_MESSAGE_COLUMNS}) VALUES ?`,
          ...(outbox.length > 0 ? [`INSERT INTO webhook_outbox (${OUTBOX_COLUMNS}) VALUES ?`] : []),
          "COMMIT",
        ].join(";\n"),
        outbox.length > 0 ? [members, rows, outbox] : [members, rows],
      );
      return messages;
    });
  }

  /** The member and message rows of a batch, given its conversations' bumped last_seq. */
  private batchRows(
    ms: NewMessage[],
    lastSeqs: RowDataPacket[],
    counts: Map<string, number>,
    now: number,
  ): { members: unknown[][]; messages: StoredMessage[]; rows: unknown[][] } {
    // The rows are locked until COMMIT: this batch's seqs are the last counts.get(convId) ones.
    const next = new Map<string, number>();
    for (const row of lastSeqs)
      next.set(String(row.conv_id), Number(row.last_seq) - (counts.get(String(row.conv_id)) ?? 0) + 1);
    const seqs = ms.map((m) => {
      const seq = next.get(m.convId);
      if (seq === undefined || !(seq >= 1)) throw new AppError(ErrorCode.INTERNAL, `no seq for ${m.convId}`);
      next.set(m.convId, seq + 1);
      return seq;
    });
    // Member rows in PK order (conv, uid); a sender's rows of one conversation in seq order, so
    // its delivered cursor can step over each of its own messages in turn.
    const members = ms.flatMap((m, i) => {
      const seq = seqs[i] as number;
      return memberUids(m).map((uid) => ({ convId: m.convId, uid: BigInt(uid), own: uid === m.sender ? seq : 0 }));
    });
    members.sort((a, b) =>
      a.convId < b.convId ? -1 : a.convId > b.convId ? 1 : a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0,
    );
    const extras = ms.map((m) => extrasToColumn(m.extras));
    const messages = ms.map((m, i) => storedMessage(m, seqs[i] as number, extras[i] ?? null));
    return {
      members: members.map((r) => [r.convId, storedId(r.uid), r.own, r.own, now]),
      messages,
      rows: messages.map((message, i) => messageRow(message, extras[i] ?? null)),
    };
  }

  private async byClientMsgId(m: NewMessage): Promise<StoredMessage | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id = ?`,
      [m.convId, m.sender, m.clientMsgId],
    );
    return rows[0] ? toChatMessage(rows[0]) : null;
  }
}

/**
 * The columns' rules for a new message (INVALID_ARGUMENT): what the database would cut short or
 * misread. Its ids are typed (checked at the edge or made by the id generator), so they are not
 * checked again.
 */
export function validateNewMessage(m: NewMessage): void {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, why);
  if (!m.convId || !fitsChars(m.convId, COLUMN_CHARS.convId)) throw bad("bad conversation id");
  requireChars(m.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
  if (!Number.isSafeInteger(m.sentAtMs)) throw bad("sentAtMs must be an integer");
}

/**
 * A member row met again: the sender's delivered cursor moves past its own message only when it
 * already had everything before it (a jump would skip an incoming message it has not acked).
 */
const MEMBER_CURSOR_UPDATE = `delivered_seq = IF(VALUES(delivered_seq) > 0 AND delivered_seq = VALUES(delivered_seq) - 1,
                                                  VALUES(delivered_seq), delivered_seq),
                               read_seq = GREATEST(read_seq, VALUES(read_seq))`;

/** A new message's row in NEW_MESSAGE_COLUMNS' order, its extras as extrasToColumn made them. */
export function messageRow(m: StoredMessage, extras: string | null): unknown[] {
  const file = fileRefToColumn(m.file);
  return [m.convId, m.seq, m.msgId, m.sender, m.recipient, m.clientMsgId, m.kind, m.text, m.sentAtMs, file, extras];
}

function storedMessage(m: NewMessage, seq: number, extras: string | null): StoredMessage {
  const message: StoredMessage = {
    convId: m.convId,
    msgId: m.msgId,
    seq,
    sender: m.sender,
    recipient: m.recipient || "0",
    clientMsgId: m.clientMsgId,
    kind: m.kind,
    text: m.text,
    sentAtMs: String(m.sentAtMs),
    file: m.file,
  };
  // What was stored of its extras, as a read answers them (the quote's snippet is filled on reads).
  return withModelColumns(message, { extras_json: extras });
}

/** Members and sender, each once, in numeric order. */
function memberUids(m: NewMessage): Uid[] {
  const unique = [...new Set([...m.members, m.sender].map((uid) => BigInt(uid)))];
  return unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(storedId);
}

/** A row of STORED_MESSAGE_COLUMNS (not completed for a reader: see completeForReader). */
export function toChatMessage(row: RowDataPacket): StoredMessage {
  const message: StoredMessage = {
    convId: row.conv_id,
    msgId: String(row.msg_id),
    seq: Number(row.seq),
    sender: storedId(row.sender),
    recipient: storedId(row.recipient),
    // VARBINARY (sql/030): the driver hands back bytes.
    clientMsgId: String(row.client_msg_id),
    kind: Number(row.kind),
    text: row.body,
    sentAtMs: String(row.sent_at),
    file: fileRefFromColumn(row.file_json),
  };
  return withModelColumns(message, row as ModelColumns);
}

/** Every item of a batch refused with err, as the store answers it. */
function refusedAll(items: unknown[], err: unknown): PromiseSettledResult<never>[] {
  const reason = mysqlError(ErrorCode.STORAGE_UNAVAILABLE, "message store", err);
  return items.map(() => ({ status: "rejected", reason }));
}

/** Driver failures in the error table (see mysql/errors.ts). */
function storageCall<T>(work: () => Promise<T>): Promise<T> {
  return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "message store", work);
}

/** The lookups completing a page for its reader, on db (message-model.ts). */
function readerLookups(db: Queryable): ModelLookups {
  return {
    async bySeqs(convId, seqs) {
      const [rows] = await db.query<RowDataPacket[]>(
        `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq IN (?)`,
        [convId, seqs],
      );
      return rows.map(toChatMessage);
    },
    async reactionsOf(convId, uid, seqs) {
      const [rows] = await db.query<RowDataPacket[]>(
        "SELECT seq, emoji FROM message_reactions WHERE conv_id = ? AND seq IN (?) AND uid = ?",
        [convId, seqs, uid],
      );
      return rows.map((r) => ({ seq: Number(r.seq), emoji: String(r.emoji) }));
    },
    async hiddenOf(convId, uid, seqs) {
      const [rows] = await db.query<RowDataPacket[]>(
        "SELECT seq FROM message_hidden WHERE conv_id = ? AND uid = ? AND seq IN (?)",
        [convId, uid, seqs],
      );
      return rows.map((r) => Number(r.seq));
    },
  };
}

/**
 * A change's outcome as every member may be pushed it: the target's quote filled in, and no
 * reader's own reactions or deletions (`me` false everywhere).
 */
async function everyonesView(outcome: ChangeOutcome, db: Queryable): Promise<ChangeOutcome> {
  const lookups = { ...readerLookups(db), reactionsOf: async () => [], hiddenOf: async () => [] };
  const [target = outcome.target] = await completeForReader("0", [outcome.target], lookups, () => false);
  return outcome.event ? { event: { ...outcome.event, target }, target } : { target };
}

/** MessageStore.change inside its transaction (see there); with afterSend, the event's outbox row too. */
async function changeIn(conn: Connection, c: MessageChange, afterSend: boolean): Promise<ChangeOutcome> {
  const { lastSeq, blocked, target } = await lockTarget(conn, c);
  const effect = c.decide(target);
  if (!effect) return { target };
  refuseBlockedChange(blocked, effect);
  const mine = effect.kind === "react" && (await hasReaction(conn, c, effect.emoji));
  const changes = effectStatements(c, target, effect, mine);
  if (!changes) return { target };
  const event = eventOf(c, lastSeq + 1, effect);
  const results = await sendStatements(conn, [
    ...changes,
    ...eventStatements(event),
    ...(afterSend
      ? [
          {
            sql: `INSERT INTO webhook_outbox (${OUTBOX_COLUMNS}) VALUES ?`,
            params: [[outboxValues(afterChangeRow(event, effect, Date.now()))]],
          },
        ]
      : []),
    { sql: `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ?`, params: targetKey(c) },
  ]);
  const row = results.at(-1)?.[0];
  if (!row) throw new AppError(ErrorCode.INTERNAL, `message ${c.convId}/${c.targetSeq} vanished under its lock`);
  const updated = toChatMessage(row);
  return { event: { ...event, target: updated }, target: updated };
}

/**
 * The conversation row locked (every change and append takes it first: one lock order), the
 * actor's membership, and the target locked: NOT_FOUND, NOT_PARTICIPANT, or the target.
 */
async function lockTarget(
  conn: Connection,
  c: MessageChange,
): Promise<{ lastSeq: number; blocked: number; target: StoredMessage }> {
  const [conv, member, rows] = await sendStatements(conn, [
    { sql: "SELECT last_seq, kind, blocked FROM conversations WHERE conv_id = ? FOR UPDATE", params: [c.convId] },
    { sql: "SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?", params: [c.convId, c.actor] },
    {
      sql: `SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ? FOR UPDATE`,
      params: targetKey(c),
    },
  ]);
  if (!conv?.[0]) throw new AppError(ErrorCode.NOT_FOUND, "no such conversation");
  // A dissolved group's messages stay as they were (issue 17).
  if (Number(conv[0].kind) === DISSOLVED_GROUP_CONVERSATION) throw new AppError(ErrorCode.GROUP_DISSOLVED);
  if (!member?.[0]) throw new AppError(ErrorCode.NOT_PARTICIPANT);
  const row = rows?.[0];
  const target = row && toChatMessage(row);
  // An event is not content: it cannot be recalled, edited or reacted to.
  if (!target || isEventKind(target.kind)) throw new AppError(ErrorCode.NOT_FOUND, "no such message");
  return { lastSeq: Number(conv[0].last_seq), blocked: Number(conv[0].blocked), target };
}

function targetKey(c: MessageChange): unknown[] {
  return [c.convId, c.targetSeq];
}

/** Whether the actor reacted to the target with emoji (one primary-key read). */
async function hasReaction(conn: Connection, c: MessageChange, emoji: string): Promise<boolean> {
  const [rows] = await conn.query<RowDataPacket[]>(
    "SELECT 1 FROM message_reactions WHERE conv_id = ? AND seq = ? AND emoji = ? AND uid = ?",
    [...targetKey(c), emoji, c.actor],
  );
  return rows.length > 0;
}

/** The statements changing the target, or null when the effect leaves it as it is. */
function effectStatements(
  c: MessageChange,
  target: StoredMessage,
  effect: MessageEffect,
  mine: boolean,
): Statement[] | null {
  switch (effect.kind) {
    case "recall":
      if (target.recalled) return null;
      // The content goes (text, file, custom payload, reactions); the place, ids and quote stay.
      return [
        {
          sql: `UPDATE messages SET body = '', file_json = NULL, extras_json = ?, recalled = 1, reactions_json = NULL
                 WHERE conv_id = ? AND seq = ?`,
          params: [recalledExtras(target), ...targetKey(c)],
        },
        { sql: "DELETE FROM message_reactions WHERE conv_id = ? AND seq = ?", params: targetKey(c) },
      ];
    case "edit":
      return [
        {
          sql: "UPDATE messages SET body = ?, edit_count = edit_count + 1, edited_at = ? WHERE conv_id = ? AND seq = ?",
          params: [effect.text, effect.atMs, ...targetKey(c)],
        },
      ];
    case "react":
      return reactionStatements(c, target, effect, mine);
  }
}

/**
 * The actor's reaction row and the target's counts; null when the actor already has it (add)
 * or has not (remove). The counts in reactions_json are kept beside the rows in the same
 * transaction, so a read needs the rows only for its reader's own.
 */
function reactionStatements(
  c: MessageChange,
  target: StoredMessage,
  effect: Extract<MessageEffect, { kind: "react" }>,
  mine: boolean,
): Statement[] | null {
  if (effect.add === mine) return null;
  const counts = countsAfter(target.reactions?.counts ?? [], effect);
  const row: Statement = effect.add
    ? {
        sql: "INSERT INTO message_reactions (conv_id, seq, emoji, uid, created_at) VALUES (?, ?, ?, ?, ?)",
        params: [...targetKey(c), effect.emoji, c.actor, c.sentAtMs],
      }
    : {
        sql: "DELETE FROM message_reactions WHERE conv_id = ? AND seq = ? AND emoji = ? AND uid = ?",
        params: [...targetKey(c), effect.emoji, c.actor],
      };
  return [
    row,
    {
      sql: "UPDATE messages SET reactions_json = ? WHERE conv_id = ? AND seq = ?",
      params: [reactionsToColumn(counts), ...targetKey(c)],
    },
  ];
}

/**
 * The counts after one reaction is added or removed, in the order the emojis were first used
 * (a new one last); AppError(REACTION_LIMIT) for a new emoji past maxDistinct.
 */
function countsAfter(
  counts: StoredReactionCount[],
  effect: { emoji: string; add: boolean; maxDistinct: number },
): { emoji: string; count: number }[] {
  const known = counts.some((r) => r.emoji === effect.emoji);
  if (effect.add && !known && counts.length >= effect.maxDistinct) {
    throw new AppError(ErrorCode.REACTION_LIMIT, `at most ${effect.maxDistinct} different reactions on a message`);
  }
  const step = effect.add ? 1 : -1;
  const after = counts.map(({ emoji, count }) => ({ emoji, count: emoji === effect.emoji ? count + step : count }));
  return known || !effect.add ? after : [...after, { emoji: effect.emoji, count: 1 }];
}

const EVENT_KIND = {
  recall: STORED_KIND.recallEvent,
  edit: STORED_KIND.editEvent,
  react: STORED_KIND.reactionEvent,
} as const;

/** The event a change stores at seq (its target is attached once the change is read back). */
function eventOf(c: MessageChange, seq: number, effect: MessageEffect): StoredMessage {
  return {
    convId: c.convId,
    msgId: c.msgId,
    seq,
    sender: c.actor,
    recipient: eventRecipient(c.convId, c.actor),
    // Unique per (conversation, sender) as uk_messages_client wants, since msgId is.
    clientMsgId: `~${c.msgId}`,
    kind: EVENT_KIND[effect.kind],
    text: "",
    sentAtMs: String(c.sentAtMs),
    targetSeq: c.targetSeq,
    ...(effect.kind === "react" ? { reaction: { emoji: effect.emoji, add: effect.add } } : {}),
  };
}

/** The event row at its seq: last_seq moves to it (the row is locked), and the actor's cursors. */
function eventStatements(event: StoredMessage): Statement[] {
  return [
    { sql: "UPDATE conversations SET last_seq = ? WHERE conv_id = ?", params: [event.seq, event.convId] },
    {
      sql: `INSERT INTO messages (${NEW_MESSAGE_COLUMNS}) VALUES ?`,
      params: [[messageRow(event, extrasToColumn(event))]],
    },
    senderCursor(event.convId, event.sender, event.seq),
  ];
}

/** An event's recipient as a message's: the actor's peer in a 1:1 conversation, "0" elsewhere. */
function eventRecipient(convId: string, actor: Uid): Uid {
  const pair = directConvMembers(convId);
  if (!pair) return "0";
  return BigInt(pair[0]) === BigInt(actor) ? pair[1] : pair[0];
}

/**
 * MessageStore.hide inside its transaction: the marks that are new, and the member row's count of
 * them (history and sync look in message_hidden only while it is above 0).
 */
async function hideIn(conn: Connection, uid: Uid, convId: string, seqs: number[]): Promise<void> {
  // A plain read of last_seq (as ack does): it only grows, so an older value only ignores more.
  const [rows] = await conn.query<RowDataPacket[]>(
    `SELECT c.last_seq, c.retained_from_seq FROM conversation_members cm JOIN conversations c ON c.conv_id = cm.conv_id
      WHERE cm.conv_id = ? AND cm.uid = ?`,
    [convId, uid],
  );
  const member = rows[0];
  if (!member) throw new AppError(ErrorCode.NOT_PARTICIPANT);
  // Not below retained_from_seq: those messages were purged (retention), nothing to hide.
  const kept = seqs.filter((seq) => seq >= Number(member.retained_from_seq) && seq <= Number(member.last_seq));
  if (kept.length === 0) return;
  const [added] = await conn.query<ResultSetHeader>("INSERT IGNORE INTO message_hidden (conv_id, uid, seq) VALUES ?", [
    kept.map((seq) => [convId, uid, seq]),
  ]);
  if (added.affectedRows === 0) return;
  await conn.query("UPDATE conversation_members SET hidden_count = hidden_count + ? WHERE conv_id = ? AND uid = ?", [
    added.affectedRows,
    convId,
    uid,
  ]);
}

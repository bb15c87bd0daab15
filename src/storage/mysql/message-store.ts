import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, isDecimalId, requireChars, storedId } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import { Batcher } from "../batcher.js";
import { fileRefFromColumn, fileRefToColumn } from "../file-ref.js";
import type { HistoryQuery, MessageStore, NewMessage, StoredMessage, Uid } from "../ports.js";
import { isUnreachable, mysqlCall, mysqlCode, mysqlError } from "./errors.js";
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

export const MESSAGE_COLUMNS = "conv_id, seq, msg_id, sender, recipient, client_msg_id, kind, body, sent_at, file_json";

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
  private readonly batcher: Batcher<NewMessage, Appended>;
  private readonly ackBatcher: Batcher<AckItem, void> | undefined;

  constructor(
    private readonly pool: Pool,
    options: MysqlMessageStoreOptions = {},
  ) {
    this.deadlockRetries = options.deadlockRetries ?? 5;
    this.guard = options.guard;
    this.fenceCheck = options.fenceCheck;
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
        if (mysqlCode(err) !== "ER_DUP_ENTRY") throw err;
        // A resend, or two racing: uk_messages_client let one of them in.
        const winner = await this.byClientMsgId(m);
        if (winner) return { message: winner, duplicate: true };
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
        `SELECT cm.conv_id, cm.delivered_seq, c.last_seq
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
        const waiting = Number(conv.last_seq) - Number(conv.delivered_seq);
        total += waiting;
        if (remaining === 0) continue;
        const take = Math.min(waiting, remaining);
        remaining -= take;
        parts.push(`(SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq LIMIT ?)`);
        params.push(conv.conv_id, Number(conv.delivered_seq), take);
      }
      if (parts.length === 0) return { messages: [], more: total > 0 };
      const [rows] = await this.pool.query<RowDataPacket[]>(parts.join(" UNION ALL "), params);
      const convOrder = new Map(convs.map((c, i) => [c.conv_id as string, i]));
      const messages = rows
        .map(toChatMessage)
        .sort((a, b) => (convOrder.get(a.convId) ?? 0) - (convOrder.get(b.convId) ?? 0) || a.seq - b.seq);
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
    if (!isDecimalId(uid)) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return storageCall(async () => {
      const [member] = await this.pool.query<RowDataPacket[]>(
        "SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?",
        [convId, uid],
      );
      if (member.length === 0) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const limit = Math.floor(query.limit);
      if (!(limit > 0)) return [];
      const afterSeq = Math.floor(query.afterSeq) || 0;
      const beforeSeq = Math.floor(query.beforeSeq) || 0;
      if (afterSeq > 0) {
        const [rows] = await this.pool.query<RowDataPacket[]>(
          `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
          [convId, afterSeq, limit],
        );
        return rows.map(toChatMessage);
      }
      const [rows] =
        beforeSeq > 0
          ? await this.pool.query<RowDataPacket[]>(
              `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
              [convId, beforeSeq, limit],
            )
          : await this.pool.query<RowDataPacket[]>(
              `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? ORDER BY seq DESC LIMIT ?`,
              [convId, limit],
            );
      return rows.map(toChatMessage).reverse();
    });
  }

  async isMember(convId: string, uid: Uid): Promise<boolean> {
    if (typeof convId !== "string" || !isDecimalId(uid)) return false;
    return storageCall(async () => {
      const [rows] = await this.pool.query<RowDataPacket[]>(
        "SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?",
        [convId, uid],
      );
      return rows.length > 0;
    });
  }

  private async insert(conn: Connection, m: NewMessage): Promise<StoredMessage> {
    const now = Date.now();
    // An upsert rather than INSERT IGNORE + UPDATE: INSERT IGNORE takes a shared lock on the
    // existing row, and two appends upgrading shared locks to exclusive deadlock each other
    // on every busy conversation. The exclusive row lock held from here to COMMIT serializes
    // appends per conversation, which is what makes seqs gapless.
    // LAST_INSERT_ID(expr) hands the new seq back in the OK packet (insertId): no SELECT.
    const [bumped] = await conn.query<ResultSetHeader>(
      `INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES (?, ?, LAST_INSERT_ID(1), ?)
       ON DUPLICATE KEY UPDATE last_seq = LAST_INSERT_ID(last_seq + 1)`,
      [m.convId, DIRECT_CONVERSATION, now],
    );
    // Except while a trigger sits on the table (a rebalance's change record): MariaDB then
    // answers insert id 0, but the session's LAST_INSERT_ID() still holds the seq.
    const seq = Number(bumped.insertId) || (await sessionLastInsertId(conn));
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
    await conn.query<ResultSetHeader>(`INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES ?`, [[messageRow(m, seq)]]);
    return storedMessage(m, seq);
  }

  /**
   * insert() for many messages in one transaction and two round trips: (1) begin, the slot
   * fence, bump each conversation's last_seq by its count and read it back; (2) member rows,
   * message rows, commit. The conversation rows stay locked from (1) to COMMIT, which is what
   * keeps every seq gapless and this batch's seqs the last counts.get(convId) ones.
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
          "SELECT conv_id, last_seq FROM conversations WHERE conv_id IN (?)",
        ].join(";\n"),
        [
          ...(fence?.params ?? []),
          convIds.map((convId) => [convId, DIRECT_CONVERSATION, counts.get(convId), now]),
          convIds,
        ],
      );
      if (fence) fence.check(results[1] ?? []);
      const { members, messages, rows } = this.batchRows(ms, results.at(-1) ?? [], counts, now);
      await conn.query(
        [
          `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES ?
           ON DUPLICATE KEY UPDATE ${MEMBER_CURSOR_UPDATE}`,
          `INSERT INTO messages (${MESSAGE_COLUMNS}) VALUES ?`,
          "COMMIT",
        ].join(";\n"),
        [members, rows],
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
    return {
      members: members.map((r) => [r.convId, storedId(r.uid), r.own, r.own, now]),
      messages: ms.map((m, i) => storedMessage(m, seqs[i] as number)),
      rows: ms.map((m, i) => messageRow(m, seqs[i] as number)),
    };
  }

  private async byClientMsgId(m: NewMessage): Promise<StoredMessage | null> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id = ?`,
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

function messageRow(m: NewMessage, seq: number): unknown[] {
  const file = fileRefToColumn(m.file);
  return [m.convId, seq, m.msgId, m.sender, m.recipient || "0", m.clientMsgId, m.kind, m.text, m.sentAtMs, file];
}

function storedMessage(m: NewMessage, seq: number): StoredMessage {
  return {
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
}

/** Members and sender, each once, in numeric order. */
function memberUids(m: NewMessage): Uid[] {
  const unique = [...new Set([...m.members, m.sender].map((uid) => BigInt(uid)))];
  return unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(storedId);
}

export function toChatMessage(row: RowDataPacket): StoredMessage {
  return {
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

async function sessionLastInsertId(conn: Connection): Promise<number> {
  const [rows] = await conn.query<RowDataPacket[]>("SELECT LAST_INSERT_ID() AS id");
  return Number(rows[0]?.id);
}

import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, requireChars } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import { fileRefToColumn } from "../file-ref.js";
import { completeForReader, extrasToColumn, type ModelLookups } from "../message-model.js";
import type {
  ChangeOutcome,
  HistoryQuery,
  MessageChange,
  MessageStore,
  NewMessage,
  StoredMessage,
  Uid,
} from "../ports.js";
import { afterSendRow } from "../webhook-outbox.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCode } from "./errors.js";
import { type CheckedChange, SqliteMessageChanges } from "./message-changes.js";
import {
  MESSAGE_COLUMNS,
  type MessageRow,
  messageInserter,
  SqliteModelLookups,
  storageCall,
  storageError,
  toChatMessage,
} from "./message-rows.js";
import { TickBatch } from "./tick-batch.js";
import { canonicalId, requireCanonicalId } from "./uids.js";
import { outboxInserter } from "./webhook-outbox-store.js";

/** conversations.kind of a 1:1 conversation. */
const DIRECT_CONVERSATION = 1;
/** The MySQL schema's limits (TEXT, TINYINT UNSIGNED; widths in COLUMN_CHARS), kept so both backends accept the same input. */
const MAX_BODY_BYTES = 65_535;
const MAX_KIND = 255;

interface CursorRow {
  conv_id: string;
  delivered_seq: number;
  last_seq: number;
}

/** A page as read in its transaction, before completeForReader; hidden: the conversations where the reader deleted something. */
interface ReadPage {
  messages: StoredMessage[];
  hidden: Set<string>;
}

/** A NewMessage whose ids are canonical decimal text (the form stored). */
interface CheckedMessage extends NewMessage {
  memberUids: Uid[];
}

type Appended = { message: StoredMessage; duplicate: boolean };

/** A write of the group commit: a nested db.transaction, so a refused one undoes only itself. */
type Write = () => unknown;

/**
 * Messages in the SQLite file: the same tables and semantics as MysqlMessageStore. better-sqlite3
 * runs each call synchronously. Appends are group-committed: those called in one turn of the
 * event loop go into one IMMEDIATE transaction (the write lock is taken at BEGIN), in call
 * order, each in a savepoint of its own so a refused one fails alone (TickBatch); so are the
 * delivery cursors of one flush. Appends are therefore serialized per file: seqs are gapless,
 * and the client-key check and the insert cannot interleave with another append, even from
 * another process. COMMIT returns after the WAL is synced (synchronous=FULL), so an answered
 * append is durable; one sync serves the batch. Changes (recall, edit, reactions) and
 * delete-for-me share the appends' batch, so they take their seqs in call order with them.
 */
export class SqliteMessageStore implements MessageStore {
  readonly #writes: TickBatch<Write, unknown>;
  readonly #append: (m: CheckedMessage) => Appended;
  readonly #changes: SqliteMessageChanges;
  readonly #acks: TickBatch<{ uid: Uid; wanted: Map<string, number> }, void>;
  readonly #pendingTx: (uid: Uid, limit: number) => ReadPage & { more: boolean };
  readonly #historyTx: (uid: Uid, convId: string, query: HistoryQuery) => ReadPage & { firstSeq: number };
  readonly #messageTx: (uid: Uid, convId: string, seq: number) => ReadPage;
  readonly #isMember: (convId: string, uid: Uid) => boolean;
  readonly #lookups: SqliteModelLookups;

  /**
   * options.afterSendOutbox (webhooks, issue 18): each append also writes the message's
   * after-send row to webhook_outbox in its own savepoint, so it commits with the message.
   */
  constructor(db: SqliteDatabase, options: { afterSendOutbox?: boolean } = {}) {
    const insertAfterSend = options.afterSendOutbox ? outboxInserter(db) : undefined;
    const byClientMsgId = db.prepare<[string, string, string], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id = ?`,
    );
    // With the seq, the pair's block mark (issue 17): a blocked pair's message is refused
    // inside its savepoint, which undoes the seq.
    const nextSeq = db.prepare<[string, number, number], { last_seq: number; blocked: number }>(
      `INSERT INTO conversations (conv_id, kind, last_seq, created_at) VALUES (?, ?, 1, ?)
       ON CONFLICT (conv_id) DO UPDATE SET last_seq = last_seq + 1
       RETURNING last_seq, blocked`,
    );
    // The sender's delivered cursor moves past its own message only when it already had
    // everything before it: a jump would skip an incoming message it has not acked yet.
    const upsertMember = db.prepare<[string, string, number, number, number]>(
      `INSERT INTO conversation_members (conv_id, uid, delivered_seq, read_seq, joined_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (conv_id, uid) DO UPDATE
         SET delivered_seq = CASE WHEN excluded.delivered_seq > 0 AND delivered_seq = excluded.delivered_seq - 1
                                  THEN excluded.delivered_seq ELSE delivered_seq END,
             read_seq = max(read_seq, excluded.read_seq)`,
    );
    const insertMessage = messageInserter(db);
    const pendingConvs = db.prepare<[string], CursorRow & { hidden_count: number; retained_from_seq: number }>(
      `SELECT cm.conv_id, cm.delivered_seq, c.last_seq, cm.hidden_count, c.retained_from_seq
         FROM conversation_members cm INDEXED BY idx_members_uid
         JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.uid = ? AND c.last_seq > cm.delivered_seq
        ORDER BY cm.conv_id`,
    );
    const after = db.prepare<[string, number, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
    );
    // History pages start after the reader's cleared seq.
    const before = db.prepare<[string, number, number, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq < ? AND seq > ? ORDER BY seq DESC LIMIT ?`,
    );
    const newest = db.prepare<[string, number, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq > ? ORDER BY seq DESC LIMIT ?`,
    );
    const cursors = db.prepare<[string, string], CursorRow>(
      `SELECT cm.conv_id, cm.delivered_seq, c.last_seq
         FROM conversation_members cm
         JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.uid = ? AND cm.conv_id IN (SELECT value FROM json_each(?))`,
    );
    const advance = db.prepare<[number, string, string]>(
      "UPDATE conversation_members SET delivered_seq = max(delivered_seq, ?) WHERE conv_id = ? AND uid = ?",
    );
    const isMember = db.prepare<[string, string]>("SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?");
    // With the conversation's retained_from_seq (the retention purge's), by its primary key.
    const member = db.prepare<
      [string, string],
      { hidden_count: number; cleared_seq: number; retained_from_seq: number }
    >(
      `SELECT cm.hidden_count, cm.cleared_seq, c.retained_from_seq
         FROM conversation_members cm LEFT JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.conv_id = ? AND cm.uid = ?`,
    );
    const one = db.prepare<[string, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ?`,
    );

    // No lookup of the clientMsgId first (a resend is rare): uk_messages_client refuses it,
    // the savepoint undoes its seq, and only then is the stored message read.
    const insert = db.transaction((m: CheckedMessage) => {
      const now = Date.now();
      const bumped = nextSeq.get(m.convId, DIRECT_CONVERSATION, now);
      if (Number(bumped?.blocked ?? 0) !== 0) throw new AppError(ErrorCode.BLOCKED);
      const seq = Number(bumped?.last_seq);
      for (const uid of m.memberUids) {
        const own = uid === m.sender ? seq : 0;
        upsertMember.run(m.convId, uid, own, own, now);
      }
      const row: MessageRow = {
        conv_id: m.convId,
        seq,
        msg_id: m.msgId,
        sender: m.sender,
        recipient: m.recipient,
        client_msg_id: m.clientMsgId,
        kind: m.kind,
        body: m.text,
        sent_at: m.sentAtMs,
        file_json: fileRefToColumn(m.file),
        extras_json: extrasToColumn(m.extras),
      };
      insertMessage(row);
      const message = toChatMessage(row);
      insertAfterSend?.(afterSendRow(message, now));
      return { message, duplicate: false };
    });
    this.#append = (m: CheckedMessage): Appended => {
      try {
        return insert(m);
      } catch (err) {
        // A resend: the client key's conflict, or a block since the message was stored.
        const resend =
          sqliteCode(err) === "SQLITE_CONSTRAINT_UNIQUE" || (err instanceof AppError && err.code === ErrorCode.BLOCKED);
        const stored = resend ? byClientMsgId.get(m.convId, m.sender, m.clientMsgId) : undefined;
        if (stored) return { message: toChatMessage(stored), duplicate: true };
        throw err;
      }
    };
    this.#writes = new TickBatch<Write, unknown>(db, (write) => write(), storageError);
    this.#changes = new SqliteMessageChanges(db, options);
    this.#lookups = new SqliteModelLookups(db);

    // One read transaction: the conversation list and the pages come from one snapshot.
    this.#pendingTx = db.transaction((uid: Uid, limit: number) => {
      const convs = pendingConvs.all(uid);
      let remaining = Math.max(0, Math.floor(limit));
      let total = 0;
      const messages: StoredMessage[] = [];
      const hidden = new Set<string>();
      for (const conv of convs) {
        // Seqs the retention purge deleted are not waiting: the cursor reads from retained_from_seq.
        const from = Math.max(conv.delivered_seq, conv.retained_from_seq - 1);
        const waiting = conv.last_seq - from;
        total += Math.max(0, waiting);
        if (remaining === 0 || waiting <= 0) continue;
        const take = Math.min(waiting, remaining);
        remaining -= take;
        if (conv.hidden_count > 0) hidden.add(conv.conv_id);
        for (const row of after.all(conv.conv_id, from, take)) messages.push(toChatMessage(row));
      }
      return { messages, hidden, more: total > messages.length };
    });

    const ack = db.transaction((uid: Uid, wanted: Map<string, number>) => {
      for (const row of cursors.all(uid, JSON.stringify([...wanted.keys()]))) {
        // Never past the last message: a cursor beyond it would skip the next one.
        const target = Math.min(wanted.get(row.conv_id) ?? 0, row.last_seq);
        if (target > row.delivered_seq) advance.run(target, row.conv_id, uid);
      }
    });
    this.#acks = new TickBatch(db, ({ uid, wanted }) => ack(uid, wanted), storageError);

    this.#isMember = (convId, uid) => isMember.get(convId, uid) !== undefined;

    // The member row says whether the reader deleted anything here (what the page's completion
    // looks up) and up to which seq it cleared the history.
    const readerOf = (uid: Uid, convId: string): { hidden: Set<string>; cleared: number; retained: number } => {
      const row = member.get(convId, uid);
      if (!row) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      return {
        hidden: new Set(row.hidden_count > 0 ? [convId] : []),
        cleared: Number(row.cleared_seq),
        retained: Number(row.retained_from_seq ?? 1),
      };
    };
    const page = (convId: string, query: HistoryQuery, cleared: number): MessageRow[] => {
      const limit = Math.floor(query.limit);
      if (!(limit > 0)) return [];
      const afterSeq = Math.floor(query.afterSeq) || 0;
      const beforeSeq = Math.floor(query.beforeSeq) || 0;
      if (afterSeq > 0) return after.all(convId, Math.max(afterSeq, cleared), limit);
      return (
        beforeSeq > 0 ? before.all(convId, beforeSeq, cleared, limit) : newest.all(convId, cleared, limit)
      ).reverse();
    };
    this.#historyTx = db.transaction((uid: Uid, convId: string, query: HistoryQuery) => {
      const { hidden, cleared, retained } = readerOf(uid, convId);
      // Below retained_from_seq the retention purge deleted them: not gaps either.
      const firstSeq = Math.max(cleared + 1, retained);
      return { messages: page(convId, query, cleared).map(toChatMessage), hidden, firstSeq };
    });
    this.#messageTx = db.transaction((uid: Uid, convId: string, seq: number) => {
      const { hidden, cleared } = readerOf(uid, convId);
      // At or below the cleared seq: gone for this reader.
      const row = seq > cleared ? one.get(convId, seq) : undefined;
      return { messages: row ? [toChatMessage(row)] : [], hidden };
    });
  }

  /** Group-committed with the other writes of this event-loop turn (TickBatch), in call order. */
  async append(m: NewMessage): Promise<Appended> {
    const checked = checkNewMessage(m);
    return this.#write(() => this.#append(checked));
  }

  async pending(uid: Uid, limit: number): Promise<{ messages: StoredMessage[]; more: boolean }> {
    const canonical = canonicalId(uid);
    if (canonical === null) return { messages: [], more: false };
    const read = storageCall(() => this.#pendingTx(canonical, limit));
    return { messages: await this.#complete(canonical, read), more: read.more };
  }

  async ack(uid: Uid, cursors: { convId: string; seq: number }[]): Promise<void> {
    const canonical = canonicalId(uid);
    if (canonical === null) return;
    const wanted = new Map<string, number>();
    for (const { convId, seq } of cursors) {
      if (typeof convId !== "string" || !Number.isInteger(seq) || seq <= 0) continue;
      wanted.set(convId, Math.max(wanted.get(convId) ?? 0, seq));
    }
    if (wanted.size === 0) return;
    // The cursors of one flush (DeliveredCursors) share one commit.
    await this.#acks.submit({ uid: canonical, wanted });
  }

  async history(uid: Uid, convId: string, query: HistoryQuery): Promise<StoredMessage[]> {
    return (await this.historyPage(uid, convId, query)).messages;
  }

  async historyPage(
    uid: Uid,
    convId: string,
    query: HistoryQuery,
  ): Promise<{ messages: StoredMessage[]; firstSeq: number }> {
    const canonical = canonicalId(uid);
    if (canonical === null) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    const read = storageCall(() => this.#historyTx(canonical, convId, query));
    return { messages: await this.#complete(canonical, read), firstSeq: read.firstSeq };
  }

  async message(uid: Uid, convId: string, seq: number): Promise<StoredMessage | null> {
    const canonical = canonicalId(uid);
    if (canonical === null) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    const read = storageCall(() => this.#messageTx(canonical, convId, Number.isSafeInteger(seq) ? seq : 0));
    const [message] = await this.#complete(canonical, read);
    return message ?? null;
  }

  async change(c: MessageChange): Promise<ChangeOutcome> {
    const actor = canonicalId(c.actor);
    if (actor === null) throw new AppError(ErrorCode.NOT_PARTICIPANT);
    if (typeof c.convId !== "string" || !Number.isSafeInteger(c.targetSeq) || c.targetSeq <= 0) {
      throw new AppError(ErrorCode.NOT_FOUND, "no such message");
    }
    if (!Number.isSafeInteger(c.sentAtMs)) {
      throw new AppError(ErrorCode.INVALID_ARGUMENT, "sentAtMs must be an integer");
    }
    const checked: CheckedChange = { ...c, msgId: requireCanonicalId(c.msgId), actor };
    return this.#everyonesView(await this.#write(() => this.#changes.change(checked)));
  }

  async hide(uid: Uid, convId: string, seqs: number[]): Promise<void> {
    const canonical = canonicalId(uid);
    if (canonical === null || typeof convId !== "string") throw new AppError(ErrorCode.NOT_PARTICIPANT);
    await this.#write(() => this.#changes.hide(canonical, convId, seqs));
  }

  /** One write in the group commit; the batch answers each write's own result. */
  #write<R>(work: () => R): Promise<R> {
    return this.#writes.submit(work) as Promise<R>;
  }

  /**
   * A change's outcome as every member may be pushed it (as MysqlMessageStore answers it): the
   * target's quote filled in, no reader's own reactions or deletions (`me` false everywhere).
   */
  async #everyonesView(outcome: ChangeOutcome): Promise<ChangeOutcome> {
    const lookups: ModelLookups = {
      bySeqs: (convId, seqs) => this.#lookups.bySeqs(convId, seqs),
      reactionsOf: async () => [],
      hiddenOf: async () => [],
    };
    const [target = outcome.target] = await completeForReader("0", [outcome.target], lookups, () => false);
    return outcome.event ? { event: { ...outcome.event, target }, target } : { target };
  }

  /** A page read for `uid`, completed for it (quotes, event targets, its reactions, what it deleted). */
  #complete(uid: Uid, read: ReadPage): Promise<StoredMessage[]> {
    return completeForReader(uid, read.messages, this.#lookups, (convId) => read.hidden.has(convId));
  }

  async isMember(convId: string, uid: Uid): Promise<boolean> {
    const canonical = canonicalId(uid);
    if (canonical === null || typeof convId !== "string") return false;
    return storageCall(() => this.#isMember(convId, canonical));
  }
}

/** The same checks as the MySQL adapter makes (its columns refuse what these refuse), ids made canonical. */
function checkNewMessage(m: NewMessage): CheckedMessage {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, why);
  if (typeof m.convId !== "string" || !m.convId || !fitsChars(m.convId, COLUMN_CHARS.convId)) {
    throw bad("bad conversation id");
  }
  requireChars(m.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
  const id = (value: string) => {
    const canonical = canonicalId(value);
    if (canonical === null) throw bad(`"${value}" is not a decimal id`);
    return canonical;
  };
  const sender = id(m.sender);
  const members = m.members.map(id);
  if (!Number.isSafeInteger(m.sentAtMs)) throw bad("sentAtMs must be an integer");
  if (!Number.isInteger(m.kind) || m.kind < 0 || m.kind > MAX_KIND) throw bad("bad message kind");
  if (typeof m.text !== "string" || Buffer.byteLength(m.text, "utf8") > MAX_BODY_BYTES) {
    throw bad(`text must be at most ${MAX_BODY_BYTES} bytes`);
  }
  return {
    ...m,
    msgId: id(m.msgId),
    sender,
    recipient: m.recipient ? id(m.recipient) : "0",
    members,
    memberUids: [...new Set([...members, sender])],
  };
}

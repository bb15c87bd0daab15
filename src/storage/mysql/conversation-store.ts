import type { RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, isDecimalId } from "../../ids/identifiers.js";
import type { ConversationStore, ConversationSummaryRecord, StoredMessage, Uid } from "../ports.js";
import { mysqlCall } from "./errors.js";
import type { Queryable } from "./friend-store.js";
import { STORED_MESSAGE_COLUMNS, toChatMessage } from "./message-store.js";
import type { Pool } from "./pool.js";

/**
 * The conversation list and read cursors of the conversations on one MySQL instance. A read
 * cursor is conversation_members.read_seq, beside its conversation, so marking read is one
 * update on the conversation's instance.
 */
export class MysqlConversationStore implements ConversationStore {
  /**
   * `write`, when given, runs the read-cursor update for a conversation (the sharded adapter:
   * in a transaction behind its rebalance fence for the conversation's slot).
   */
  constructor(
    private readonly pool: Pool,
    private readonly write: <T>(convId: string, work: (db: Queryable) => Promise<T>) => Promise<T> = (_c, work) =>
      work(pool as unknown as Queryable),
  ) {}

  async list(uid: Uid, limit: number): Promise<ConversationSummaryRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || max === 0) return [];
    return call("conversation list", async () => {
      // The user's memberships by idx_members_uid; the newest first by the last message's
      // snowflake id (time-ordered). The peer's cursor only for 1:1 conversations, where the
      // other member is one row. Mentioned: a mark (of uid, or of everyone) past uid's read cursor.
      const [convs] = await this.pool.query<RowDataPacket[]>(
        `SELECT c.conv_id, c.last_seq, cm.read_seq,
                GREATEST(cm.mention_seq, c.mention_all_seq) > cm.read_seq AS mentioned,
                IF(c.conv_id LIKE 'p:%',
                   (SELECT COALESCE(MAX(o.read_seq), 0) FROM conversation_members o
                     WHERE o.conv_id = c.conv_id AND o.uid <> cm.uid), 0) AS peer_read_seq,
                m.msg_id AS last_msg_id
           FROM conversation_members cm FORCE INDEX (idx_members_uid)
           JOIN conversations c ON c.conv_id = cm.conv_id
           LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.last_seq
          WHERE cm.uid = ?
          ORDER BY m.msg_id IS NULL, m.msg_id DESC, c.conv_id
          LIMIT ?`,
        [uid, max],
      );
      if (convs.length === 0) return [];
      const parts = convs.map(() => `(SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ?)`);
      const [rows] = await this.pool.query<RowDataPacket[]>(
        parts.join(" UNION ALL "),
        convs.flatMap((c) => [c.conv_id, Number(c.last_seq)]),
      );
      const last = new Map<string, StoredMessage>(rows.map((r) => [String(r.conv_id), toChatMessage(r)]));
      return convs.map((c) => ({
        convId: String(c.conv_id),
        lastSeq: Number(c.last_seq),
        readSeq: Number(c.read_seq),
        peerReadSeq: Number(c.peer_read_seq),
        lastMessage: last.get(String(c.conv_id)),
        mentioned: Number(c.mentioned) === 1,
      }));
    });
  }

  async markRead(uid: Uid, convId: string, seq: number): Promise<{ readSeq: number; advanced: boolean }> {
    if (!isDecimalId(uid) || typeof convId !== "string" || convId.length > COLUMN_CHARS.convId) {
      throw new AppError(ErrorCode.NOT_PARTICIPANT);
    }
    return call("mark read", async () => {
      // Plain read of last_seq (as ack does): it only grows, so clamping to an older value is safe.
      const [rows] = await this.pool.query<RowDataPacket[]>(
        `SELECT cm.read_seq, c.last_seq FROM conversation_members cm
           JOIN conversations c ON c.conv_id = cm.conv_id
          WHERE cm.conv_id = ? AND cm.uid = ?`,
        [convId, uid],
      );
      const row = rows[0];
      if (!row) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const target = Math.min(Math.max(0, Math.floor(seq)), Number(row.last_seq));
      if (target <= Number(row.read_seq)) return { readSeq: Number(row.read_seq), advanced: false };
      await this.write(convId, (db) =>
        db.query("UPDATE conversation_members SET read_seq = GREATEST(read_seq, ?) WHERE conv_id = ? AND uid = ?", [
          target,
          convId,
          uid,
        ]),
      );
      return { readSeq: target, advanced: true };
    });
  }
}

function call<T>(what: string, work: () => Promise<T>): Promise<T> {
  return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
}

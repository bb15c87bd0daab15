import type { RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, isDecimalId } from "../../ids/identifiers.js";
import { clearTarget, settingsChanges, settingsOf } from "../conversation-settings.js";
import type {
  ConversationSettingsRecord,
  ConversationStore,
  ConversationSummaryRecord,
  StoredMessage,
  Uid,
} from "../ports.js";
import { mysqlCall } from "./errors.js";
import type { Queryable } from "./friend-store.js";
import { STORED_MESSAGE_COLUMNS, toChatMessage } from "./message-store.js";
import type { Pool } from "./pool.js";
import { retryingDeadlocks } from "./transaction.js";

/** A summary with the snowflake id of the conversation's last message (what the list is ordered by). */
export interface ListedConversation {
  summary: ConversationSummaryRecord;
  /** Set even when the last message is not shown (cleared for the user). */
  lastMsgId: string | undefined;
}

/**
 * The conversation list, read cursors and per-user settings of the conversations on one MySQL
 * instance. A read cursor and the settings are columns of conversation_members, beside their
 * conversation, so each change is one update on the conversation's instance.
 */
export class MysqlConversationStore implements ConversationStore {
  /**
   * `write`, when given, runs the writes of one conversation's member rows (the sharded
   * adapter: in a transaction behind its rebalance fence for the conversation's slot).
   */
  constructor(
    private readonly pool: Pool,
    private readonly write: <T>(convId: string, work: (db: Queryable) => Promise<T>) => Promise<T> = (_c, work) =>
      work(pool as unknown as Queryable),
    private readonly deadlockRetries = 5,
  ) {}

  async list(uid: Uid, limit: number): Promise<ConversationSummaryRecord[]> {
    return (await this.listed(uid, limit)).map((c) => c.summary);
  }

  /** list() with each conversation's last message id (the sharded adapter merges pages by it). */
  async listed(uid: Uid, limit: number): Promise<ListedConversation[]> {
    const max = Math.max(0, Math.floor(limit));
    if (!isDecimalId(uid) || max === 0) return [];
    return call("conversation list", async () => {
      // The user's memberships by idx_members_uid; pinned first, then the newest first by the
      // last message's snowflake id (time-ordered); a hidden one only once a message came
      // after it was hidden. The peer's cursor only for 1:1 conversations, where the other
      // member is one row. Mentioned: a mark (of uid, or of everyone) past uid's read cursor.
      const [convs] = await this.pool.query<RowDataPacket[]>(
        `SELECT c.conv_id, c.last_seq, cm.read_seq, cm.pinned, cm.muted, cm.hidden_at_seq,
                GREATEST(cm.cleared_seq, c.retained_from_seq - 1) AS cleared_seq,
                GREATEST(cm.mention_seq, c.mention_all_seq) > cm.read_seq AS mentioned,
                IF(c.conv_id LIKE 'p:%',
                   (SELECT COALESCE(MAX(o.read_seq), 0) FROM conversation_members o
                     WHERE o.conv_id = c.conv_id AND o.uid <> cm.uid), 0) AS peer_read_seq,
                m.msg_id AS last_msg_id
           FROM conversation_members cm FORCE INDEX (idx_members_uid)
           JOIN conversations c ON c.conv_id = cm.conv_id
           LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.last_seq
          WHERE cm.uid = ? AND (cm.hidden_at_seq IS NULL OR c.last_seq > cm.hidden_at_seq)
          ORDER BY cm.pinned DESC, m.msg_id IS NULL, m.msg_id DESC, c.conv_id
          LIMIT ?`,
        [uid, max],
      );
      if (convs.length === 0) return [];
      // A last message the user cleared (or retention purged) is not shown (nor read).
      const shown = convs.filter((c) => Number(c.last_seq) > Number(c.cleared_seq));
      const last = new Map<string, StoredMessage>();
      if (shown.length > 0) {
        const parts = shown.map(() => `(SELECT ${STORED_MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ?)`);
        const [rows] = await this.pool.query<RowDataPacket[]>(
          parts.join(" UNION ALL "),
          shown.flatMap((c) => [c.conv_id, Number(c.last_seq)]),
        );
        for (const r of rows) last.set(String(r.conv_id), toChatMessage(r));
      }
      return convs.map((c) => ({
        summary: {
          convId: String(c.conv_id),
          lastSeq: Number(c.last_seq),
          readSeq: Number(c.read_seq),
          peerReadSeq: Number(c.peer_read_seq),
          lastMessage: last.get(String(c.conv_id)),
          mentioned: Number(c.mentioned) === 1,
          settings: settingsOf({
            pinned: c.pinned,
            muted: c.muted,
            hidden_at_seq: c.hidden_at_seq,
            last_seq: c.last_seq,
          }),
          clearedSeq: Number(c.cleared_seq),
        },
        lastMsgId: c.last_msg_id === null || c.last_msg_id === undefined ? undefined : String(c.last_msg_id),
      }));
    });
  }

  async markRead(uid: Uid, convId: string, seq: number): Promise<{ readSeq: number; advanced: boolean }> {
    requireMemberKey(uid, convId);
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

  /**
   * Two statements in the write's transaction: the member row with the conversation's last_seq
   * (a plain read: a message stored meanwhile comes after the hidden seq, which shows the
   * conversation again, as it should), then an update of the patched columns alone (a patch
   * from another device at the same time keeps its own fields).
   */
  async setSettings(
    uid: Uid,
    convId: string,
    patch: Partial<ConversationSettingsRecord>,
  ): Promise<ConversationSettingsRecord> {
    requireMemberKey(uid, convId);
    return call("conversation settings", () =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(convId, async (db) => {
          const row = await memberRow(db, convId, uid);
          const changes = settingsChanges(patch, Number(row.last_seq));
          const columns = Object.keys(changes) as (keyof typeof changes)[];
          if (columns.length > 0) {
            await db.query(
              `UPDATE conversation_members SET ${columns.map((c) => `${c} = ?`).join(", ")} WHERE conv_id = ? AND uid = ?`,
              [...columns.map((c) => changes[c]), convId, uid],
            );
          }
          return settingsOf({
            pinned: changes.pinned ?? row.pinned,
            muted: changes.muted ?? row.muted,
            hidden_at_seq: "hidden_at_seq" in changes ? (changes.hidden_at_seq ?? null) : row.hidden_at_seq,
            last_seq: row.last_seq,
          });
        }),
      ),
    );
  }

  /**
   * Two statements in the write's transaction (behind the slot's fence when sharded): the
   * member row with last_seq, then one update moving cleared_seq, delivered_seq and read_seq
   * up to the target (each never backwards), so sync, unread and mentions skip what was cleared.
   */
  async clearHistory(uid: Uid, convId: string, seq: number): Promise<number> {
    requireMemberKey(uid, convId);
    return call("clear history", () =>
      retryingDeadlocks(this.deadlockRetries, () =>
        this.write(convId, async (db) => {
          const row = await memberRow(db, convId, uid);
          const target = clearTarget(seq, Number(row.last_seq));
          if (target <= Number(row.cleared_seq)) return Number(row.cleared_seq);
          await db.query(
            `UPDATE conversation_members
                SET cleared_seq = GREATEST(cleared_seq, ?), delivered_seq = GREATEST(delivered_seq, ?),
                    read_seq = GREATEST(read_seq, ?)
              WHERE conv_id = ? AND uid = ?`,
            [target, target, target, convId, uid],
          );
          return target;
        }),
      ),
    );
  }
}

/** uid's member row of convId with its settings and the conversation's last_seq; AppError(NOT_PARTICIPANT). */
async function memberRow(db: Queryable, convId: string, uid: Uid): Promise<RowDataPacket> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT cm.pinned, cm.muted, cm.hidden_at_seq, cm.cleared_seq, c.last_seq FROM conversation_members cm
       JOIN conversations c ON c.conv_id = cm.conv_id
      WHERE cm.conv_id = ? AND cm.uid = ?`,
    [convId, uid],
  );
  const row = rows[0];
  if (!row) throw new AppError(ErrorCode.NOT_PARTICIPANT);
  return row;
}

function requireMemberKey(uid: Uid, convId: string): void {
  if (!isDecimalId(uid) || typeof convId !== "string" || convId.length > COLUMN_CHARS.convId) {
    throw new AppError(ErrorCode.NOT_PARTICIPANT);
  }
}

function call<T>(what: string, work: () => Promise<T>): Promise<T> {
  return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
}

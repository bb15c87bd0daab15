import { AppError, ErrorCode } from "../../errors.js";
import { clearTarget, settingsChanges, settingsOf } from "../conversation-settings.js";
import type { ConversationSettingsRecord, ConversationStore, ConversationSummaryRecord, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { MESSAGE_COLUMNS, type MessageRow, toChatMessage } from "./message-rows.js";
import { canonicalId } from "./uids.js";

interface SummaryRow {
  conv_id: string;
  last_seq: number;
  read_seq: number;
  peer_read_seq: number;
  mentioned: number;
  pinned: number;
  muted: number;
  hidden_at_seq: number | null;
  cleared_seq: number;
}

interface SettingsRow {
  pinned: number;
  muted: number;
  hidden_at_seq: number | null;
  cleared_seq: number;
  last_seq: number;
}

/** The conversation list and read cursors in the SQLite file (the same semantics as MysqlConversationStore). */
export class SqliteConversationStore implements ConversationStore {
  readonly #list: (uid: string, limit: number) => ConversationSummaryRecord[];
  readonly #markRead: (uid: string, convId: string, seq: number) => { readSeq: number; advanced: boolean };
  readonly #setSettings: (
    uid: string,
    convId: string,
    patch: Partial<ConversationSettingsRecord>,
  ) => ConversationSettingsRecord;
  readonly #clearHistory: (uid: string, convId: string, seq: number) => number;

  constructor(db: SqliteDatabase) {
    // msg_id is decimal TEXT: ordered by length first, then text, it orders as the number does.
    // Pinned conversations first; a hidden one only once a message came after it was hidden.
    const summaries = db.prepare<[string, number], SummaryRow>(
      `SELECT c.conv_id, c.last_seq, cm.read_seq, cm.pinned, cm.muted, cm.hidden_at_seq,
              max(cm.cleared_seq, c.retained_from_seq - 1) AS cleared_seq,
              CASE WHEN c.conv_id LIKE 'p:%'
                   THEN (SELECT COALESCE(MAX(o.read_seq), 0) FROM conversation_members o
                          WHERE o.conv_id = c.conv_id AND o.uid <> cm.uid)
                   ELSE 0 END AS peer_read_seq,
              -- A group message marks the uids it mentions (mention_seq) or everyone (mention_all_seq).
              max(cm.mention_seq, c.mention_all_seq) > cm.read_seq AS mentioned
         FROM conversation_members cm INDEXED BY idx_members_uid
         JOIN conversations c ON c.conv_id = cm.conv_id
         LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.last_seq
        WHERE cm.uid = ? AND (cm.hidden_at_seq IS NULL OR c.last_seq > cm.hidden_at_seq)
        ORDER BY cm.pinned DESC, m.msg_id IS NULL, length(m.msg_id) DESC, m.msg_id DESC, c.conv_id
        LIMIT ?`,
    );
    const message = db.prepare<[string, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ?`,
    );
    this.#list = db.transaction((uid: string, limit: number) =>
      summaries.all(uid, limit).map((row) => {
        // A last message the user cleared (or retention purged) is not shown.
        const cleared = Number(row.cleared_seq);
        const last = Number(row.last_seq) > cleared ? message.get(row.conv_id, row.last_seq) : undefined;
        return {
          convId: row.conv_id,
          lastSeq: Number(row.last_seq),
          readSeq: Number(row.read_seq),
          peerReadSeq: Number(row.peer_read_seq),
          lastMessage: last ? toChatMessage(last) : undefined,
          mentioned: row.mentioned === 1,
          settings: settingsOf(row),
          clearedSeq: cleared,
        };
      }),
    );
    const cursor = db.prepare<[string, string], { read_seq: number; last_seq: number }>(
      `SELECT cm.read_seq, c.last_seq FROM conversation_members cm
         JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.conv_id = ? AND cm.uid = ?`,
    );
    const advance = db.prepare<[number, string, string]>(
      "UPDATE conversation_members SET read_seq = max(read_seq, ?) WHERE conv_id = ? AND uid = ?",
    );
    const markRead = db.transaction((uid: string, convId: string, seq: number) => {
      const row = cursor.get(convId, uid);
      if (!row) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const target = Math.min(Math.max(0, Math.floor(seq)), Number(row.last_seq));
      if (target <= Number(row.read_seq)) return { readSeq: Number(row.read_seq), advanced: false };
      advance.run(target, convId, uid);
      return { readSeq: target, advanced: true };
    });
    this.#markRead = (uid, convId, seq) => markRead.immediate(uid, convId, seq);

    const member = db.prepare<[string, string], SettingsRow>(
      `SELECT cm.pinned, cm.muted, cm.hidden_at_seq, cm.cleared_seq, c.last_seq FROM conversation_members cm
         JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.conv_id = ? AND cm.uid = ?`,
    );
    const writeSettings = db.prepare<[number, number, number | null, string, string]>(
      "UPDATE conversation_members SET pinned = ?, muted = ?, hidden_at_seq = ? WHERE conv_id = ? AND uid = ?",
    );
    const setSettings = db.transaction((uid: string, convId: string, patch: Partial<ConversationSettingsRecord>) => {
      const row = member.get(convId, uid);
      if (!row) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const next = { ...row, ...settingsChanges(patch, Number(row.last_seq)) };
      writeSettings.run(Number(next.pinned), Number(next.muted), next.hidden_at_seq, convId, uid);
      return settingsOf(next);
    });
    this.#setSettings = (uid, convId, patch) => setSettings.immediate(uid, convId, patch);
    // The delivery and read cursors move with it: sync, unread and mentions skip what was cleared.
    const clear = db.prepare<[number, number, number, string, string]>(
      `UPDATE conversation_members
          SET cleared_seq = max(cleared_seq, ?), delivered_seq = max(delivered_seq, ?), read_seq = max(read_seq, ?)
        WHERE conv_id = ? AND uid = ?`,
    );
    const clearHistory = db.transaction((uid: string, convId: string, seq: number) => {
      const row = member.get(convId, uid);
      if (!row) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const target = clearTarget(seq, Number(row.last_seq));
      if (target <= Number(row.cleared_seq)) return Number(row.cleared_seq);
      clear.run(target, target, target, convId, uid);
      return target;
    });
    this.#clearHistory = (uid, convId, seq) => clearHistory.immediate(uid, convId, seq);
  }

  async list(uid: Uid, limit: number): Promise<ConversationSummaryRecord[]> {
    const canonical = canonicalId(uid);
    const max = Math.max(0, Math.floor(limit));
    if (canonical === null || max === 0) return [];
    return run(() => this.#list(canonical, max));
  }

  async markRead(uid: Uid, convId: string, seq: number): Promise<{ readSeq: number; advanced: boolean }> {
    const canonical = canonicalId(uid);
    if (canonical === null || typeof convId !== "string") throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return run(() => this.#markRead(canonical, convId, seq));
  }

  async setSettings(
    uid: Uid,
    convId: string,
    patch: Partial<ConversationSettingsRecord>,
  ): Promise<ConversationSettingsRecord> {
    const canonical = canonicalId(uid);
    if (canonical === null || typeof convId !== "string") throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return run(() => this.#setSettings(canonical, convId, patch));
  }

  async clearHistory(uid: Uid, convId: string, seq: number): Promise<number> {
    const canonical = canonicalId(uid);
    if (canonical === null || typeof convId !== "string") throw new AppError(ErrorCode.NOT_PARTICIPANT);
    return run(() => this.#clearHistory(canonical, convId, seq));
  }
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite conversations", work);
}

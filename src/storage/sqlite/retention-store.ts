import { ErrorCode } from "../../errors.js";
import type { ExpiredConversation, PurgedBatch, RetentionStore, SentMessageEraser, Uid } from "../ports.js";
import { expiredEnd, expiredOf, filesBefore, groupCursor, type ScannedConversation } from "../retention/expiry.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId } from "./uids.js";

/** The one database of the embedded default: RetentionStore.instances() answers it alone. */
const INSTANCE = "sqlite";

/**
 * Retention in the SQLite file (see RetentionStore): the same statements as the MySQL adapter,
 * each purge one IMMEDIATE transaction (the file's write lock, as appends take it), so a purge
 * and an append of the same conversation never interleave.
 */
export class SqliteRetentionStore implements RetentionStore {
  readonly #scan: (after: string, limit: number) => ScannedConversation[];
  readonly #groups: (afterTtl: number, afterGroup: string, limit: number) => (ScannedConversation & { ttl: number })[];
  readonly #purge: (convId: string, cutoffMs: number, maxRows: number) => PurgedBatch;

  constructor(db: SqliteDatabase) {
    // Every conversation by its primary key, its first retained message by the messages
    // primary key, and its group's own TTL by the chat_groups primary key.
    const scan = db.prepare<[string, number], ScannedConversation>(
      `SELECT c.conv_id, m.sent_at, g.message_ttl_seconds AS group_ttl
         FROM (SELECT conv_id, retained_from_seq FROM conversations WHERE conv_id > ? ORDER BY conv_id LIMIT ?) c
         LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.retained_from_seq
         LEFT JOIN chat_groups g ON substr(c.conv_id, 1, 2) = 'g:' AND g.group_id = substr(c.conv_id, 3)
        ORDER BY c.conv_id`,
    );
    // Only the groups with a TTL of their own (idx_groups_ttl), in (ttl, group_id) order.
    const groups = db.prepare<[number, number, string, number], ScannedConversation & { ttl: number }>(
      `SELECT 'g:' || g.group_id AS conv_id, m.sent_at, g.message_ttl_seconds AS group_ttl, g.message_ttl_seconds AS ttl
         FROM chat_groups g INDEXED BY idx_groups_ttl
         JOIN conversations c ON c.conv_id = 'g:' || g.group_id
         LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.retained_from_seq
        WHERE g.message_ttl_seconds > 0
          AND (g.message_ttl_seconds > ? OR (g.message_ttl_seconds = ? AND g.group_id > ?))
        ORDER BY g.message_ttl_seconds, g.group_id
        LIMIT ?`,
    );
    const retained = db.prepare<[string], { retained_from_seq: number }>(
      "SELECT retained_from_seq FROM conversations WHERE conv_id = ?",
    );
    // With the id of the file each names, released by the caller (see RetentionStore.purge).
    const oldest = db.prepare<[string, number, number], { seq: number; sent_at: number; file_id: string | null }>(
      "SELECT seq, sent_at, json_extract(file_json, '$.id') AS file_id FROM messages WHERE conv_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
    );
    const range = "conv_id = ? AND seq >= ? AND seq < ?";
    const deleteMessages = db.prepare<[string, number, number]>(`DELETE FROM messages WHERE ${range}`);
    const deleteReactions = db.prepare<[string, number, number]>(`DELETE FROM message_reactions WHERE ${range}`);
    // A member's hidden_count counts its delete-for-me marks (reads look for marks only while it
    // is above 0): the purged ones are taken off before they go.
    const hiddenCounts = db.prepare<[string, number, number], { uid: string; n: number }>(
      `SELECT uid, COUNT(*) AS n FROM message_hidden WHERE ${range} GROUP BY uid`,
    );
    const lowerHiddenCount = db.prepare<[number, number, string, string]>(
      "UPDATE conversation_members SET hidden_count = CASE WHEN hidden_count > ? THEN hidden_count - ? ELSE 0 END WHERE conv_id = ? AND uid = ?",
    );
    const deleteHidden = db.prepare<[string, number, number]>(`DELETE FROM message_hidden WHERE ${range}`);
    const moveRetained = db.prepare<[number, string]>(
      "UPDATE conversations SET retained_from_seq = ? WHERE conv_id = ?",
    );

    this.#scan = (after, limit) => scan.all(after, limit);
    this.#groups = (afterTtl, afterGroup, limit) => groups.all(afterTtl, afterTtl, afterGroup, limit);
    const purge = db.transaction((convId: string, cutoffMs: number, maxRows: number): PurgedBatch => {
      const conv = retained.get(convId);
      if (!conv) return { messages: 0, files: [] };
      const from = Number(conv.retained_from_seq);
      const rows = oldest.all(convId, from, maxRows);
      const end = expiredEnd(rows, cutoffMs);
      if (end <= from) return { messages: 0, files: [] };
      const deleted = deleteMessages.run(convId, from, end).changes;
      deleteReactions.run(convId, from, end);
      for (const { uid, n } of hiddenCounts.all(convId, from, end)) lowerHiddenCount.run(n, n, convId, uid);
      deleteHidden.run(convId, from, end);
      moveRetained.run(end, convId);
      return { messages: deleted, files: filesBefore(rows, end) };
    });
    this.#purge = (convId, cutoffMs, maxRows) => purge.immediate(convId, cutoffMs, maxRows);
  }

  instances(): string[] {
    return [INSTANCE];
  }

  async expiredConversations(
    _instance: string,
    after: string,
    limit: number,
    nowMs: number,
    defaultTtlSeconds: number,
  ): Promise<{ conversations: ExpiredConversation[]; next: string | null }> {
    const max = Math.max(1, Math.floor(limit));
    return call(() => {
      if (defaultTtlSeconds > 0) {
        const rows = this.#scan(after, max);
        const next = rows.length === max ? (rows.at(-1)?.conv_id ?? null) : null;
        return { conversations: expiredOf(rows, nowMs, defaultTtlSeconds), next };
      }
      const cursor = groupCursor.parse(after);
      const rows = this.#groups(cursor.ttl, cursor.groupId, max);
      const last = rows.at(-1);
      const next = rows.length === max && last ? groupCursor.format(last.ttl, last.conv_id.slice(2)) : null;
      return { conversations: expiredOf(rows, nowMs, 0), next };
    });
  }

  async purge(convId: string, cutoffMs: number, maxRows: number): Promise<PurgedBatch> {
    if (typeof convId !== "string" || !Number.isSafeInteger(cutoffMs) || !(maxRows >= 1)) {
      return { messages: 0, files: [] };
    }
    return call(() => this.#purge(convId, cutoffMs, Math.floor(maxRows)));
  }
}

/** The event kinds (MESSAGE_KIND_*_EVENT): an account deletion's erase leaves them as they are. */
const EVENT_KINDS = "kind BETWEEN 50 AND 59";

/**
 * Account deletion's erase in the SQLite file (see SentMessageEraser): a page of the sender's
 * messages by uk_messages_client (conv_id, sender, client_msg_id), erased as a recall erases
 * one, in one IMMEDIATE transaction.
 */
export class SqliteSentMessageEraser implements SentMessageEraser {
  readonly #conversations: (uid: string) => string[];
  readonly #erase: (
    uid: string,
    convId: string,
    after: string,
    maxRows: number,
  ) => { erased: number; next: string | null };

  constructor(db: SqliteDatabase) {
    const memberships = db.prepare<[string], { conv_id: string }>(
      "SELECT conv_id FROM conversation_members INDEXED BY idx_members_uid WHERE uid = ? ORDER BY conv_id",
    );
    const page = db.prepare<[string, string, string, number], { seq: number; client_msg_id: string; erase: number }>(
      `SELECT seq, client_msg_id, CASE WHEN recalled = 0 AND NOT (${EVENT_KINDS}) THEN 1 ELSE 0 END AS erase
         FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id > ?
        ORDER BY client_msg_id LIMIT ?`,
    );
    const erase = db.prepare<[string, string]>(
      `UPDATE messages SET body = '', file_json = NULL, extras_json = NULL, recalled = 1, reactions_json = NULL
        WHERE conv_id = ? AND seq IN (SELECT value FROM json_each(?))`,
    );
    const dropReactions = db.prepare<[string, string]>(
      "DELETE FROM message_reactions WHERE conv_id = ? AND seq IN (SELECT value FROM json_each(?))",
    );
    this.#conversations = (uid) => memberships.all(uid).map((r) => r.conv_id);
    const tx = db.transaction((uid: string, convId: string, after: string, maxRows: number) => {
      const rows = page.all(convId, uid, after, maxRows);
      const seqs = JSON.stringify(rows.filter((r) => r.erase === 1).map((r) => r.seq));
      const erased = erase.run(convId, seqs).changes;
      if (erased > 0) dropReactions.run(convId, seqs);
      return { erased, next: rows.length === maxRows ? (rows.at(-1)?.client_msg_id ?? null) : null };
    });
    this.#erase = (uid, convId, after, maxRows) => tx.immediate(uid, convId, after, maxRows);
  }

  async conversationsOf(uid: Uid): Promise<string[]> {
    const canonical = canonicalId(uid);
    if (canonical === null) return [];
    return call(() => this.#conversations(canonical));
  }

  async eraseSent(
    uid: Uid,
    convId: string,
    after: string,
    maxRows: number,
  ): Promise<{ erased: number; next: string | null }> {
    const canonical = canonicalId(uid);
    if (canonical === null || typeof convId !== "string") return { erased: 0, next: null };
    return call(() => this.#erase(canonical, convId, after, Math.max(1, Math.floor(maxRows))));
  }
}

function call<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite retention", work);
}

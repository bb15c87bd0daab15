import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { ErrorCode } from "../../errors.js";
import { GROUP_CONV_PREFIX, isDecimalId } from "../../ids/identifiers.js";
import type { ExpiredConversation, PurgedBatch, RetentionStore, SentMessageEraser, Uid } from "../ports.js";
import { expiredEnd, expiredOf, filesBefore, groupCursor, type ScannedConversation } from "../retention/expiry.js";
import { mysqlCall } from "./errors.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";
import { type FenceCheck, inSentTransaction, retryingDeadlocks } from "./transaction.js";

/**
 * Where the retention purge and an account's erase find their rows: one pool, or the shards of
 * the current map (src/storage/sharded/retention-store.ts).
 */
export interface RetentionPlacement {
  /** Every instance (a purge pass runs over each). */
  instances(): string[];
  /** The instance holding a conversation now. */
  instanceOf(convId: string): string;
  pool(instanceId: string): Pool;
  /** The slot fence as a statement, sent in a write's first round trip (sharded only). */
  fenceCheck?: (keys: readonly string[]) => FenceCheck | undefined;
  /** The conversations uid is a member of (the conversation list's source). */
  conversationsOf(uid: Uid): Promise<string[]>;
  /**
   * Runs a write again while its slot is fenced, on the slot's new owner (sharded); an erase
   * follows its conversation so. The purge does not: a fenced slot is skipped for the pass.
   */
  retryingFences<T>(work: () => Promise<T>): Promise<T>;
  /** config.MYSQL_DEADLOCK_RETRIES. */
  deadlockRetries: number;
}

/** One pool: every conversation on it, no fence. */
export function onePoolRetention(pool: Pool, deadlockRetries: number): RetentionPlacement {
  return {
    instances: () => ["mysql"],
    instanceOf: () => "mysql",
    pool: () => pool,
    async conversationsOf(uid) {
      const [rows] = await pool.query<RowDataPacket[]>(
        "SELECT conv_id FROM conversation_members FORCE INDEX (idx_members_uid) WHERE uid = ? ORDER BY conv_id",
        [uid],
      );
      return rows.map((r) => String(r.conv_id));
    },
    retryingFences: (work) => work(),
    deadlockRetries,
  };
}

/** The purged range's statements: conversation, from (inclusive), end (exclusive). */
const RANGE = "conv_id = ? AND seq >= ? AND seq < ?";

/**
 * Retention on MySQL (see RetentionStore). A pass reads conversations by primary-key pages and
 * their first retained message by the messages primary key (or, when the deployment keeps
 * messages forever, only the groups of idx_groups_ttl); a purge is one transaction of two round
 * trips under the conversation row's lock, taken first as every append and change takes it.
 */
export class MysqlRetentionStore implements RetentionStore {
  constructor(private readonly placement: RetentionPlacement) {}

  instances(): string[] {
    return this.placement.instances();
  }

  /**
   * One query on the instance. Sharded, a conversation the current map places elsewhere (rows a
   * rebalance copied away and has not cleaned up yet) is left out: its new owner's pass has it.
   */
  async expiredConversations(
    instance: string,
    after: string,
    limit: number,
    nowMs: number,
    defaultTtlSeconds: number,
  ): Promise<{ conversations: ExpiredConversation[]; next: string | null }> {
    const max = Math.max(1, Math.floor(limit));
    const pool = this.placement.pool(instance);
    const { rows, next } = await mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, `retention scan on ${instance}`, () =>
      defaultTtlSeconds > 0 ? scanAll(pool, after, max) : scanGroups(pool, after, max),
    );
    const own = rows.filter((r) => this.placement.instanceOf(String(r.conv_id)) === instance);
    return { conversations: expiredOf(own, nowMs, defaultTtlSeconds), next };
  }

  /**
   * (1) begin, the slot fence, the conversation row locked, the first maxRows messages from
   * retained_from_seq (seq, sent_at) by the primary key; (2) the expired prefix deleted with its
   * reactions and delete-for-me marks (members' hidden_count lowered), retained_from_seq moved,
   * commit. A fenced slot throws SlotFencedError (rolled back, nothing done).
   */
  async purge(convId: string, cutoffMs: number, maxRows: number): Promise<PurgedBatch> {
    if (typeof convId !== "string" || !Number.isSafeInteger(cutoffMs) || !(maxRows >= 1)) return NOTHING_PURGED;
    const instance = this.placement.instanceOf(convId);
    const fence = this.placement.fenceCheck?.([convId]);
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, `retention purge on ${instance}`, () =>
      retryingDeadlocks(this.placement.deadlockRetries, () =>
        inSentTransaction(this.placement.pool(instance), (conn) =>
          purgeIn(conn, convId, cutoffMs, Math.floor(maxRows), fence),
        ),
      ),
    );
  }
}

async function purgeIn(
  conn: Connection,
  convId: string,
  cutoffMs: number,
  maxRows: number,
  fence: FenceCheck | undefined,
): Promise<PurgedBatch> {
  const [read] = await conn.query<RowDataPacket[][]>(
    [
      "START TRANSACTION",
      ...(fence ? [fence.sql] : []),
      "SELECT retained_from_seq FROM conversations WHERE conv_id = ? FOR UPDATE",
      // The id of the file a message names, in the read the purge makes anyway: the files row
      // is on another shard, released by the caller after the commit.
      `SELECT m.seq, m.sent_at, JSON_VALUE(m.file_json, '$.id') AS file_id FROM conversations c
         JOIN messages m ON m.conv_id = c.conv_id AND m.seq >= c.retained_from_seq
        WHERE c.conv_id = ? ORDER BY m.seq LIMIT ?`,
    ].join(";\n"),
    [...(fence?.params ?? []), convId, convId, maxRows],
  );
  if (fence) fence.check(read[1] ?? []);
  const conv = read.at(-2)?.[0];
  const from = Number(conv?.retained_from_seq ?? 0);
  const oldest = (read.at(-1) ?? []) as { seq: unknown; sent_at: unknown; file_id: unknown }[];
  const end = expiredEnd(oldest, cutoffMs);
  if (!conv || end <= from) {
    await conn.query("COMMIT");
    return NOTHING_PURGED;
  }
  const range = [convId, from, end];
  const [done] = await conn.query<ResultSetHeader[]>(
    [
      `DELETE FROM messages WHERE ${RANGE}`,
      `DELETE FROM message_reactions WHERE ${RANGE}`,
      // hidden_count says whether reads look for a member's delete-for-me marks at all.
      `UPDATE conversation_members cm
         JOIN (SELECT uid, COUNT(*) AS n FROM message_hidden WHERE ${RANGE} GROUP BY uid) h ON h.uid = cm.uid
          SET cm.hidden_count = IF(cm.hidden_count > h.n, cm.hidden_count - h.n, 0)
        WHERE cm.conv_id = ?`,
      `DELETE FROM message_hidden WHERE ${RANGE}`,
      "UPDATE conversations SET retained_from_seq = ? WHERE conv_id = ?",
      "COMMIT",
    ].join(";\n"),
    [...range, ...range, ...range, convId, ...range, end, convId],
  );
  return { messages: Number(done[0]?.affectedRows ?? 0), files: filesBefore(oldest, end) };
}

const NOTHING_PURGED: PurgedBatch = { messages: 0, files: [] };

/** A page of every conversation, by primary key, with its first retained message and group TTL. */
async function scanAll(
  pool: Pool,
  after: string,
  limit: number,
): Promise<{ rows: ScannedConversation[]; next: string | null }> {
  const [rows] = await pool.query<(RowDataPacket & ScannedConversation)[]>(
    `SELECT c.conv_id, m.sent_at, g.message_ttl_seconds AS group_ttl
       FROM (SELECT conv_id, retained_from_seq FROM conversations WHERE conv_id > ? ORDER BY conv_id LIMIT ?) c
       LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.retained_from_seq
       LEFT JOIN chat_groups g
         ON c.conv_id LIKE '${GROUP_CONV_PREFIX}%' AND g.group_id = CAST(SUBSTRING(c.conv_id, ${GROUP_CONV_PREFIX.length + 1}) AS UNSIGNED)
      ORDER BY c.conv_id`,
    [after, limit],
  );
  return { rows, next: rows.length === limit ? String(rows.at(-1)?.conv_id) : null };
}

/** A page of the groups with a TTL of their own, by idx_groups_ttl (see groupCursor). */
async function scanGroups(
  pool: Pool,
  after: string,
  limit: number,
): Promise<{ rows: ScannedConversation[]; next: string | null }> {
  const cursor = groupCursor.parse(after);
  const [rows] = await pool.query<(RowDataPacket & ScannedConversation)[]>(
    `SELECT CONCAT('${GROUP_CONV_PREFIX}', g.group_id) AS conv_id, g.group_id, m.sent_at, g.message_ttl_seconds AS group_ttl
       FROM chat_groups g FORCE INDEX (idx_groups_ttl)
       JOIN conversations c ON c.conv_id = CONCAT('${GROUP_CONV_PREFIX}', g.group_id)
       LEFT JOIN messages m ON m.conv_id = c.conv_id AND m.seq = c.retained_from_seq
      WHERE g.message_ttl_seconds > 0
        AND (g.message_ttl_seconds > ? OR (g.message_ttl_seconds = ? AND g.group_id > ?))
      ORDER BY g.message_ttl_seconds, g.group_id
      LIMIT ?`,
    [cursor.ttl, cursor.ttl, cursor.groupId, limit],
  );
  const last = rows.at(-1);
  return {
    rows,
    next: rows.length === limit && last ? groupCursor.format(Number(last.group_ttl), String(last.group_id)) : null,
  };
}

/**
 * Account deletion's erase on MySQL (see SentMessageEraser): one transaction of two round trips
 * per page, on the conversation's instance behind its slot fence: (1) the sender's next page by
 * uk_messages_client (conv_id, sender, client_msg_id), locked; (2) the page's messages erased as
 * a recall erases one, their reactions deleted, commit.
 */
export class MysqlSentMessageEraser implements SentMessageEraser {
  constructor(private readonly placement: RetentionPlacement) {}

  conversationsOf(uid: Uid): Promise<string[]> {
    if (!isDecimalId(uid)) return Promise.resolve([]);
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "conversations of a user", () =>
      this.placement.conversationsOf(uid),
    );
  }

  async eraseSent(
    uid: Uid,
    convId: string,
    after: string,
    maxRows: number,
  ): Promise<{ erased: number; next: string | null }> {
    if (!isDecimalId(uid) || typeof convId !== "string") return { erased: 0, next: null };
    const max = Math.max(1, Math.floor(maxRows));
    // The cursor is the last client_msg_id's bytes in hex (VARBINARY, sql/030).
    const from = /^([0-9a-f]{2})*$/.test(after) ? after : "";
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, "erase of a user's messages", () =>
      this.placement.retryingFences(() => {
        const instance = this.placement.instanceOf(convId);
        const fence = this.placement.fenceCheck?.([convId]);
        return retryingDeadlocks(this.placement.deadlockRetries, () =>
          inSentTransaction(this.placement.pool(instance), (conn) => eraseIn(conn, uid, convId, from, max, fence)),
        );
      }),
    );
  }
}

async function eraseIn(
  conn: Connection,
  uid: Uid,
  convId: string,
  after: string,
  maxRows: number,
  fence: FenceCheck | undefined,
): Promise<{ erased: number; next: string | null }> {
  const [read] = await conn.query<RowDataPacket[][]>(
    [
      "START TRANSACTION",
      ...(fence ? [fence.sql] : []),
      `SELECT seq, HEX(client_msg_id) AS cursor_hex, recalled = 0 AND kind NOT BETWEEN 50 AND 59 AS erase
         FROM messages WHERE conv_id = ? AND sender = ? AND client_msg_id > UNHEX(?)
        ORDER BY client_msg_id LIMIT ? FOR UPDATE`,
    ].join(";\n"),
    [...(fence?.params ?? []), convId, uid, after, maxRows],
  );
  if (fence) fence.check(read[1] ?? []);
  const rows = read.at(-1) ?? [];
  const next = rows.length === maxRows ? String(rows.at(-1)?.cursor_hex).toLowerCase() : null;
  const seqs = rows.filter((r) => Number(r.erase) === 1).map((r) => Number(r.seq));
  if (seqs.length === 0) {
    await conn.query("COMMIT");
    return { erased: 0, next };
  }
  const [done] = await conn.query<ResultSetHeader[]>(
    [
      `UPDATE messages SET body = '', file_json = NULL, extras_json = NULL, recalled = 1, reactions_json = NULL
        WHERE conv_id = ? AND seq IN (?)`,
      "DELETE FROM message_reactions WHERE conv_id = ? AND seq IN (?)",
      "COMMIT",
    ].join(";\n"),
    [convId, seqs, convId, seqs],
  );
  return { erased: Number(done[0]?.affectedRows ?? 0), next };
}

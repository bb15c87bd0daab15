import type { Pool, RowDataPacket } from "mysql2/promise";
import type { Uid } from "../ports.js";
import type { Connection } from "./timeouts.js";

type Db = Pick<Pool, "query"> | Pick<Connection, "query">;

/**
 * user_conversations on one MySQL instance: which conversations a user is in. The sharded
 * stores keep each user's rows on that user's shard, to find the user's conversations on the
 * others (sql/002_sharding.sql).
 */

/** The user's conversations, those whose id starts with `prefix` ("g:") when given. */
export async function indexedConversations(db: Db, uid: Uid, prefix?: string): Promise<string[]> {
  const [rows] = prefix
    ? await db.query<RowDataPacket[]>("SELECT conv_id FROM user_conversations WHERE uid = ? AND conv_id LIKE ?", [
        uid,
        `${prefix}%`,
      ])
    : await db.query<RowDataPacket[]>("SELECT conv_id FROM user_conversations WHERE uid = ?", [uid]);
  return rows.map((r) => String(r.conv_id));
}

/** Lists convId for each of uids (again is harmless). */
export function indexConversation(db: Db, uids: Uid[], convId: string, now: number): Promise<void> {
  return indexEntries(
    db,
    uids.map((uid) => ({ uid, convId })),
    now,
  );
}

/** Lists each entry's conversation for its user, in one statement (again is harmless). */
export async function indexEntries(db: Db, entries: { uid: Uid; convId: string }[], now: number): Promise<void> {
  await db.query("INSERT IGNORE INTO user_conversations (uid, conv_id, created_at) VALUES ?", [
    entries.map((e) => [e.uid, e.convId, now]),
  ]);
}

export async function unindexConversation(db: Db, uid: Uid, convId: string): Promise<void> {
  await db.query("DELETE FROM user_conversations WHERE uid = ? AND conv_id = ?", [uid, convId]);
}

/** Unlists convId for each of uids, in one statement. */
export async function unindexConversations(db: Db, uids: Uid[], convId: string): Promise<void> {
  if (uids.length === 0) return;
  await db.query("DELETE FROM user_conversations WHERE conv_id = ? AND uid IN (?)", [convId, uids]);
}

import { AppError, ErrorCode } from "../../errors.js";
import { convIdForPair } from "../../ids/identifiers.js";
import { blockBit } from "../blocks.js";
import type { BlockRecord, BlockStore, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

/** conversations.kind of a 1:1 conversation. */
const DIRECT_CONVERSATION = 1;

/**
 * Blocks in the SQLite file: the same rows and mark as MysqlBlockStore (user_blocks, and the
 * pair's conversations.blocked bit), each block and unblock in one transaction.
 */
export class SqliteBlockStore implements BlockStore {
  readonly #block;
  readonly #unblock;
  readonly #among;
  readonly #list;
  readonly #count;

  constructor(db: SqliteDatabase) {
    const insert = db.prepare<[string, string, number]>(
      "INSERT OR IGNORE INTO user_blocks (uid, blocked_uid, created_at) VALUES (?, ?, ?)",
    );
    const mark = db.prepare<[string, number, number, number]>(
      `INSERT INTO conversations (conv_id, kind, last_seq, created_at, blocked) VALUES (?, ?, 0, ?, ?)
       ON CONFLICT (conv_id) DO UPDATE SET blocked = blocked | excluded.blocked`,
    );
    const unmark = db.prepare<[number, string]>("UPDATE conversations SET blocked = blocked & ? WHERE conv_id = ?");
    const remove = db.prepare<[string, string]>("DELETE FROM user_blocks WHERE uid = ? AND blocked_uid = ?");
    this.#block = db.transaction((uid: Uid, other: Uid, atMs: number) => {
      const added = insert.run(uid, other, atMs).changes > 0;
      mark.run(convIdForPair(uid, other), DIRECT_CONVERSATION, atMs, blockBit(uid, other));
      return added;
    });
    this.#unblock = db.transaction((uid: Uid, other: Uid) => {
      unmark.run(3 - blockBit(uid, other), convIdForPair(uid, other));
      return remove.run(uid, other).changes > 0;
    });
    this.#among = db.prepare<[string], { conv_id: string }>(
      "SELECT conv_id FROM conversations WHERE conv_id IN (SELECT value FROM json_each(?)) AND blocked <> 0",
    );
    this.#list = db.prepare<[string, number], { blocked_uid: Uid; created_at: number }>(
      `SELECT blocked_uid, created_at FROM user_blocks WHERE uid = ?
        ORDER BY created_at DESC, length(blocked_uid) DESC, blocked_uid DESC LIMIT ?`,
    );
    this.#count = db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM user_blocks WHERE uid = ?");
  }

  async block(uid: Uid, other: Uid, atMs: number): Promise<boolean> {
    const [x, y] = pair(uid, other);
    return run(() => this.#block.immediate(x, y, atMs));
  }

  async unblock(uid: Uid, other: Uid): Promise<boolean> {
    const [x, y] = pair(uid, other);
    return run(() => this.#unblock.immediate(x, y));
  }

  async blockedAmong(uid: Uid, others: Uid[]): Promise<Set<Uid>> {
    const found = new Set<Uid>();
    const me = canonicalId(uid);
    if (me === null) return found;
    // Answered as the caller named them (the canonical form is only the key).
    const byConv = new Map<string, Uid>();
    for (const other of others) {
      const them = canonicalId(other);
      if (them !== null && them !== me) byConv.set(convIdForPair(me, them), other);
    }
    if (byConv.size === 0) return found;
    for (const row of run(() => this.#among.all(JSON.stringify([...byConv.keys()])))) {
      found.add(byConv.get(row.conv_id) as Uid);
    }
    return found;
  }

  async blocked(uid: Uid, limit: number): Promise<BlockRecord[]> {
    const me = canonicalId(uid);
    if (me === null) return [];
    return run(() =>
      this.#list
        .all(me, Math.max(0, Math.floor(limit)))
        .map((r) => ({ uid: r.blocked_uid, sinceMs: Number(r.created_at) })),
    );
  }

  async blockCount(uid: Uid): Promise<number> {
    const me = canonicalId(uid);
    if (me === null) return 0;
    return run(() => Number(this.#count.get(me)?.n ?? 0));
  }
}

/** Two different ids, canonical (INVALID_ARGUMENT otherwise: nobody blocks itself). */
function pair(uid: Uid, other: Uid): [Uid, Uid] {
  const x = requireCanonicalId(uid);
  const y = requireCanonicalId(other);
  if (x === y) throw new AppError(ErrorCode.INVALID_ARGUMENT, "nobody blocks itself");
  return [x, y];
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite blocks", work);
}

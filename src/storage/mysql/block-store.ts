import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { convIdForPair, isDecimalId, storedId } from "../../ids/identifiers.js";
import { blockBit } from "../blocks.js";
import type { BlockRecord, BlockStore, Uid } from "../ports.js";
import { mysqlCall } from "./errors.js";
import type { Queryable } from "./friend-store.js";
import type { Pool } from "./pool.js";

/**
 * Where rows placed by a key are (a uid, a conversation id, "report:" + id): one pool for
 * everything, or the key's shard. The block and report stores run the same statements on both.
 */
export interface KeyPlacement {
  /** The instance holding key's rows (keys on one instance are read in one query). */
  instanceOf(key: string): string;
  /** Every instance (a read of all rows, e.g. the newest reports). */
  instances(): string[];
  pool(instanceId: string): Pool;
  /** A write of rows placed by key (the sharded adapter: behind its slot fence, retried on the new owner). */
  write<T>(key: string, work: (db: Queryable) => Promise<T>): Promise<T>;
}

/** One instance: every row in the one pool, each write one statement on it. */
export function onePool(pool: Pool): KeyPlacement {
  return {
    instanceOf: () => "mysql",
    instances: () => ["mysql"],
    pool: () => pool,
    write: (_key, work) => work(pool as unknown as Queryable),
  };
}

/** conversations.kind of a 1:1 conversation. */
const DIRECT_CONVERSATION = 1;

/**
 * Blocks in MySQL (see BlockStore): the blocker's user_blocks row on its uid's instance, and
 * the mark on the pair's conversation row on the conversation's instance, two writes without a
 * cross-shard transaction. The mark is set only after the row is written and cleared before the
 * row is deleted, so a mark never exists without the row that lists it: a call that failed
 * half-way leaves at most a listed block whose mark is missing (block) or already cleared
 * (unblock), and its retry, whose every statement is idempotent, completes it.
 */
export class MysqlBlockStore implements BlockStore {
  constructor(private readonly placement: KeyPlacement) {}

  /**
   * (1) INSERT IGNORE of the row on uid's instance; (2) the mark, as an upsert of the
   * conversation row on its instance (a pair that never talked has none yet). Two statements.
   */
  async block(blocker: Uid, blocked: Uid, atMs: number): Promise<boolean> {
    const [uid, other] = checkPair(blocker, blocked);
    const convId = convIdForPair(uid, other);
    const bit = blockBit(uid, other);
    return this.call("block", async () => {
      const [row] = await this.placement.write(uid, (db) =>
        db.query<ResultSetHeader>("INSERT IGNORE INTO user_blocks (uid, blocked_uid, created_at) VALUES (?, ?, ?)", [
          uid,
          other,
          atMs,
        ]),
      );
      await this.placement.write(convId, (db) =>
        db.query(
          `INSERT INTO conversations (conv_id, kind, last_seq, created_at, blocked) VALUES (?, ?, 0, ?, ?)
           ON DUPLICATE KEY UPDATE blocked = blocked | VALUES(blocked)`,
          [convId, DIRECT_CONVERSATION, atMs, bit],
        ),
      );
      return row.affectedRows > 0;
    });
  }

  /** (1) The mark cleared on the conversation's instance; (2) the row deleted. Two statements. */
  async unblock(blocker: Uid, blocked: Uid): Promise<boolean> {
    const [uid, other] = checkPair(blocker, blocked);
    const convId = convIdForPair(uid, other);
    const keep = 3 - blockBit(uid, other);
    return this.call("unblock", async () => {
      await this.placement.write(convId, (db) =>
        db.query("UPDATE conversations SET blocked = blocked & ? WHERE conv_id = ?", [keep, convId]),
      );
      const [row] = await this.placement.write(uid, (db) =>
        db.query<ResultSetHeader>("DELETE FROM user_blocks WHERE uid = ? AND blocked_uid = ?", [uid, other]),
      );
      return row.affectedRows > 0;
    });
  }

  /** The pairs' conversation rows, one query per instance holding some of them (in parallel). */
  async blockedAmong(uid: Uid, others: Uid[]): Promise<Set<Uid>> {
    const found = new Set<Uid>();
    if (!isDecimalId(uid)) return found;
    const byConv = new Map<string, Uid>();
    for (const other of others) {
      if (isDecimalId(other) && BigInt(other) !== BigInt(uid)) byConv.set(convIdForPair(uid, other), other);
    }
    if (byConv.size === 0) return found;
    const byInstance = new Map<string, string[]>();
    for (const convId of byConv.keys()) {
      const id = this.placement.instanceOf(convId);
      byInstance.set(id, [...(byInstance.get(id) ?? []), convId]);
    }
    await this.call("blocks", () =>
      Promise.all(
        [...byInstance].map(async ([id, convIds]) => {
          const [rows] = await this.placement
            .pool(id)
            .query<RowDataPacket[]>("SELECT conv_id FROM conversations WHERE conv_id IN (?) AND blocked <> 0", [
              convIds,
            ]);
          for (const row of rows) found.add(byConv.get(String(row.conv_id)) as Uid);
        }),
      ),
    );
    return found;
  }

  async blocked(blocker: Uid, limit: number): Promise<BlockRecord[]> {
    if (!isDecimalId(blocker)) return [];
    const uid = canonical(blocker);
    return this.call("block list", async () => {
      const [rows] = await this.placement
        .pool(this.placement.instanceOf(uid))
        .query<RowDataPacket[]>(
          "SELECT blocked_uid, created_at FROM user_blocks WHERE uid = ? ORDER BY created_at DESC, blocked_uid DESC LIMIT ?",
          [uid, Math.max(0, Math.floor(limit))],
        );
      return rows.map((r) => ({ uid: storedId(r.blocked_uid), sinceMs: Number(r.created_at) }));
    });
  }

  async blockCount(blocker: Uid): Promise<number> {
    if (!isDecimalId(blocker)) return 0;
    const uid = canonical(blocker);
    return this.call("block list", async () => {
      const [rows] = await this.placement
        .pool(this.placement.instanceOf(uid))
        .query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM user_blocks WHERE uid = ?", [uid]);
      return Number(rows[0]?.n ?? 0);
    });
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

/**
 * Two different decimal uids in canonical form ("007" is 7: the placement key is the uid's
 * text); INVALID_ARGUMENT otherwise (nobody blocks itself).
 */
function checkPair(uid: Uid, other: Uid): [Uid, Uid] {
  for (const id of [uid, other]) {
    if (!isDecimalId(id)) throw new AppError(ErrorCode.INVALID_ARGUMENT, `"${id}" is not a decimal id`);
  }
  const pair: [Uid, Uid] = [canonical(uid), canonical(other)];
  if (pair[0] === pair[1]) throw new AppError(ErrorCode.INVALID_ARGUMENT, "nobody blocks itself");
  return pair;
}

/** A decimal id's canonical text (checked by the caller). */
function canonical(id: Uid): Uid {
  return `${BigInt(id)}`;
}

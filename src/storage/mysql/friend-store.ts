import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import type { FriendApplicationRecord, FriendRecord, FriendStore, Uid } from "../ports.js";
import { mysqlCall } from "./errors.js";
import type { Pool } from "./pool.js";
import type { Connection } from "./timeouts.js";

/** A pool or a connection in a transaction: what a statement runs on. */
export type Queryable = Pick<Connection, "query">;

/** Where a user's rows are: the one pool, or the uid's shard. */
export interface UidPlacement {
  /** Reads of rows placed by uid. */
  poolOf(uid: Uid): Pool;
  /** A write of rows placed by uid (the sharded adapter runs it behind its rebalance fence). */
  write<T>(uid: Uid, work: (db: Queryable) => Promise<T>): Promise<T>;
}

/** One instance: every row in the one pool. */
export function singlePool(pool: Pool): UidPlacement {
  return { poolOf: () => pool, write: (_uid, work) => work(pool as unknown as Queryable) };
}

/**
 * Friends in MySQL. Every row is read and written on its owner's pool (`poolOf(uid)`), so the
 * same code serves one instance (one pool for all) and shards (the uid's instance). A friendship
 * is two rows written one after the other, without a cross-shard transaction: both writes are
 * idempotent, so a befriend that failed half-way is completed by its retry (the application
 * is dropped only after both rows are written).
 */
export class MysqlFriendStore implements FriendStore {
  constructor(private readonly placement: UidPlacement) {}

  private poolOf(uid: Uid): Pool {
    return this.placement.poolOf(uid);
  }

  async apply(a: FriendApplicationRecord): Promise<void> {
    checkUids(a.fromUid, a.toUid);
    await this.call("friend application", () =>
      this.placement.write(a.toUid, (db) =>
        db.query(
          `INSERT INTO friend_applications (to_uid, from_uid, message, created_at) VALUES (?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE message = VALUES(message), created_at = VALUES(created_at)`,
          [a.toUid, a.fromUid, a.message, a.createdAtMs],
        ),
      ),
    );
  }

  async incoming(uid: Uid, limit: number): Promise<FriendApplicationRecord[]> {
    if (!isDecimalId(uid)) return [];
    return this.call("friend applications", async () => {
      const [rows] = await this.poolOf(uid).query<RowDataPacket[]>(
        `SELECT to_uid, from_uid, message, created_at FROM friend_applications
          WHERE to_uid = ? ORDER BY created_at DESC, from_uid LIMIT ?`,
        [uid, Math.max(0, Math.floor(limit))],
      );
      return rows.map(toApplication);
    });
  }

  async application(fromUid: Uid, toUid: Uid): Promise<FriendApplicationRecord | null> {
    if (!isDecimalId(fromUid) || !isDecimalId(toUid)) return null;
    return this.call("friend application", async () => {
      const [rows] = await this.poolOf(toUid).query<RowDataPacket[]>(
        "SELECT to_uid, from_uid, message, created_at FROM friend_applications WHERE to_uid = ? AND from_uid = ?",
        [toUid, fromUid],
      );
      return rows[0] ? toApplication(rows[0]) : null;
    });
  }

  async dropApplication(fromUid: Uid, toUid: Uid): Promise<boolean> {
    if (!isDecimalId(fromUid) || !isDecimalId(toUid)) return false;
    return this.call("friend application", async () => {
      const [result] = await this.placement.write(toUid, (db) =>
        db.query<ResultSetHeader>("DELETE FROM friend_applications WHERE to_uid = ? AND from_uid = ?", [
          toUid,
          fromUid,
        ]),
      );
      return result.affectedRows > 0;
    });
  }

  async befriend(a: Uid, b: Uid, sinceMs: number): Promise<void> {
    checkUids(a, b);
    for (const [owner, friend] of [
      [a, b],
      [b, a],
    ] as const) {
      await this.call("friendship", () =>
        this.placement.write(owner, (db) =>
          db.query("INSERT IGNORE INTO friendships (uid, friend_uid, created_at) VALUES (?, ?, ?)", [
            owner,
            friend,
            sinceMs,
          ]),
        ),
      );
    }
  }

  async unfriend(a: Uid, b: Uid): Promise<boolean> {
    checkUids(a, b);
    const removed = await Promise.all(
      [
        [a, b],
        [b, a],
      ].map(([owner, friend]) =>
        this.call("friendship", async () => {
          const [result] = await this.placement.write(owner as Uid, (db) =>
            db.query<ResultSetHeader>("DELETE FROM friendships WHERE uid = ? AND friend_uid = ?", [owner, friend]),
          );
          return result.affectedRows > 0;
        }),
      ),
    );
    return removed[0] === true;
  }

  async areFriends(a: Uid, b: Uid): Promise<boolean> {
    if (!isDecimalId(a) || !isDecimalId(b)) return false;
    return this.call("friendship", async () => {
      const [rows] = await this.poolOf(a).query<RowDataPacket[]>(
        "SELECT 1 FROM friendships WHERE uid = ? AND friend_uid = ?",
        [a, b],
      );
      return rows.length > 0;
    });
  }

  async friends(uid: Uid, limit: number): Promise<FriendRecord[]> {
    if (!isDecimalId(uid)) return [];
    return this.call("friend list", async () => {
      const [rows] = await this.poolOf(uid).query<RowDataPacket[]>(
        "SELECT friend_uid, created_at FROM friendships WHERE uid = ? ORDER BY created_at, friend_uid LIMIT ?",
        [uid, Math.max(0, Math.floor(limit))],
      );
      return rows.map((r) => ({ uid: storedId(r.friend_uid), sinceMs: Number(r.created_at) }));
    });
  }

  async friendCount(uid: Uid): Promise<number> {
    if (!isDecimalId(uid)) return 0;
    return this.call("friend list", async () => {
      const [rows] = await this.poolOf(uid).query<RowDataPacket[]>(
        "SELECT COUNT(*) AS n FROM friendships WHERE uid = ?",
        [uid],
      );
      return Number(rows[0]?.n ?? 0);
    });
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

function checkUids(...uids: Uid[]): void {
  for (const uid of uids) {
    if (!isDecimalId(uid)) throw new AppError(ErrorCode.INVALID_ARGUMENT, `"${uid}" is not a decimal id`);
  }
}

function toApplication(row: RowDataPacket): FriendApplicationRecord {
  return {
    fromUid: storedId(row.from_uid),
    toUid: storedId(row.to_uid),
    message: String(row.message),
    createdAtMs: Number(row.created_at),
  };
}

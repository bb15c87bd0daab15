import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import type { FriendApplicationRecord, FriendRecord, FriendStore, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

interface ApplicationRow {
  to_uid: Uid;
  from_uid: Uid;
  message: string;
  created_at: number;
}

/** Friends in the SQLite file: the same tables and semantics as MysqlFriendStore, one file. */
export class SqliteFriendStore implements FriendStore {
  readonly #apply;
  readonly #incoming;
  readonly #application;
  readonly #drop;
  readonly #befriend;
  readonly #unfriend;
  readonly #isFriend;
  readonly #friends;
  readonly #count;

  constructor(db: SqliteDatabase) {
    this.#apply = db.prepare<[string, string, string, number]>(
      `INSERT INTO friend_applications (to_uid, from_uid, message, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (to_uid, from_uid) DO UPDATE SET message = excluded.message, created_at = excluded.created_at`,
    );
    this.#incoming = db.prepare<[string, number], ApplicationRow>(
      `SELECT to_uid, from_uid, message, created_at FROM friend_applications
        WHERE to_uid = ? ORDER BY created_at DESC, from_uid LIMIT ?`,
    );
    this.#application = db.prepare<[string, string], ApplicationRow>(
      "SELECT to_uid, from_uid, message, created_at FROM friend_applications WHERE to_uid = ? AND from_uid = ?",
    );
    this.#drop = db.prepare<[string, string]>("DELETE FROM friend_applications WHERE to_uid = ? AND from_uid = ?");
    const insert = db.prepare<[string, string, number]>(
      "INSERT OR IGNORE INTO friendships (uid, friend_uid, created_at) VALUES (?, ?, ?)",
    );
    this.#befriend = db.transaction((a: string, b: string, since: number) => {
      insert.run(a, b, since);
      insert.run(b, a, since);
    });
    const remove = db.prepare<[string, string]>("DELETE FROM friendships WHERE uid = ? AND friend_uid = ?");
    this.#unfriend = db.transaction((a: string, b: string) => {
      const had = remove.run(a, b).changes > 0;
      remove.run(b, a);
      return had;
    });
    this.#isFriend = db.prepare<[string, string]>("SELECT 1 FROM friendships WHERE uid = ? AND friend_uid = ?");
    this.#friends = db.prepare<[string, number], { friend_uid: Uid; created_at: number }>(
      "SELECT friend_uid, created_at FROM friendships WHERE uid = ? ORDER BY created_at, friend_uid LIMIT ?",
    );
    this.#count = db.prepare<[string], { n: number }>("SELECT COUNT(*) AS n FROM friendships WHERE uid = ?");
  }

  async apply(a: FriendApplicationRecord): Promise<void> {
    const to = requireCanonicalId(a.toUid);
    const from = requireCanonicalId(a.fromUid);
    if (typeof a.message !== "string" || !fitsChars(a.message, COLUMN_CHARS.friendMessage)) {
      throw new AppError(
        ErrorCode.INVALID_ARGUMENT,
        `message must be at most ${COLUMN_CHARS.friendMessage} characters`,
      );
    }
    run(() => this.#apply.run(to, from, a.message, a.createdAtMs));
  }

  async incoming(uid: Uid, limit: number): Promise<FriendApplicationRecord[]> {
    const to = canonicalId(uid);
    if (to === null) return [];
    return run(() => this.#incoming.all(to, Math.max(0, Math.floor(limit))).map(toApplication));
  }

  async application(fromUid: Uid, toUid: Uid): Promise<FriendApplicationRecord | null> {
    const from = canonicalId(fromUid);
    const to = canonicalId(toUid);
    if (from === null || to === null) return null;
    return run(() => {
      const row = this.#application.get(to, from);
      return row ? toApplication(row) : null;
    });
  }

  async dropApplication(fromUid: Uid, toUid: Uid): Promise<boolean> {
    const from = canonicalId(fromUid);
    const to = canonicalId(toUid);
    if (from === null || to === null) return false;
    return run(() => this.#drop.run(to, from).changes > 0);
  }

  async befriend(a: Uid, b: Uid, sinceMs: number): Promise<void> {
    const x = requireCanonicalId(a);
    const y = requireCanonicalId(b);
    run(() => this.#befriend.immediate(x, y, sinceMs));
  }

  async unfriend(a: Uid, b: Uid): Promise<boolean> {
    const x = requireCanonicalId(a);
    const y = requireCanonicalId(b);
    return run(() => this.#unfriend.immediate(x, y));
  }

  async areFriends(a: Uid, b: Uid): Promise<boolean> {
    const x = canonicalId(a);
    const y = canonicalId(b);
    if (x === null || y === null) return false;
    return run(() => this.#isFriend.get(x, y) !== undefined);
  }

  async friends(uid: Uid, limit: number): Promise<FriendRecord[]> {
    const x = canonicalId(uid);
    if (x === null) return [];
    return run(() =>
      this.#friends
        .all(x, Math.max(0, Math.floor(limit)))
        .map((r) => ({ uid: r.friend_uid, sinceMs: Number(r.created_at) })),
    );
  }

  async friendCount(uid: Uid): Promise<number> {
    const x = canonicalId(uid);
    if (x === null) return 0;
    return run(() => Number(this.#count.get(x)?.n ?? 0));
  }
}

function toApplication(row: ApplicationRow): FriendApplicationRecord {
  return {
    fromUid: row.from_uid,
    toUid: row.to_uid,
    message: row.message,
    createdAtMs: Number(row.created_at),
  };
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite friends", work);
}

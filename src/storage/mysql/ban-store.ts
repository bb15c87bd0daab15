import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import { ADMIN_COLUMN_CHARS, type BanRecord, type BanStore, type Uid } from "../ports.js";
import { mysqlCall } from "./errors.js";
import type { UidPlacement } from "./friend-store.js";

/** What the columns would refuse or misread (INVALID_ARGUMENT). */
export function checkBan(ban: BanRecord): void {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, why);
  if (!isDecimalId(ban.uid)) throw bad(`"${ban.uid}" is not a decimal id`);
  if (!Number.isSafeInteger(ban.untilMs) || ban.untilMs < 0) throw bad("untilMs must be 0 or a time in ms");
  if (!Number.isSafeInteger(ban.createdAt)) throw bad("createdAt must be an integer");
  if (typeof ban.reason !== "string" || !fitsChars(ban.reason, ADMIN_COLUMN_CHARS.banReason)) {
    throw bad(`a ban's reason is at most ${ADMIN_COLUMN_CHARS.banReason} characters`);
  }
}

/** Bans in MySQL, each row on its uid's instance (one pool, or the uid's shard). */
export class MysqlBanStore implements BanStore {
  constructor(private readonly placement: UidPlacement) {}

  async ban(ban: BanRecord): Promise<void> {
    checkBan(ban);
    await this.call("ban", () =>
      this.placement.write(ban.uid, (db) =>
        db.query(
          `INSERT INTO user_bans (uid, until_ms, reason, created_at) VALUES (?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE until_ms = VALUES(until_ms), reason = VALUES(reason), created_at = VALUES(created_at)`,
          [ban.uid, ban.untilMs, ban.reason, ban.createdAt],
        ),
      ),
    );
  }

  async unban(uid: Uid): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    const [result] = await this.call("unban", () =>
      this.placement.write(uid, (db) => db.query<ResultSetHeader>("DELETE FROM user_bans WHERE uid = ?", [uid])),
    );
    return result.affectedRows > 0;
  }

  async byUid(uid: Uid): Promise<BanRecord | null> {
    if (!isDecimalId(uid)) return null;
    const [rows] = await this.call("ban", () =>
      this.placement
        .poolOf(uid)
        .query<RowDataPacket[]>("SELECT uid, until_ms, reason, created_at FROM user_bans WHERE uid = ?", [uid]),
    );
    const row = rows[0];
    if (!row) return null;
    return {
      uid: storedId(row.uid),
      untilMs: Number(row.until_ms),
      reason: String(row.reason),
      createdAt: Number(row.created_at),
    };
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

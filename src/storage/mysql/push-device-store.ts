import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { ErrorCode } from "../../errors.js";
import { isDecimalId, storedId } from "../../ids/identifiers.js";
import {
  type PushDeviceRecord,
  type PushDeviceStore,
  type PushProviderName,
  pushDeviceKindOf,
  type Uid,
} from "../ports.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";
import { uidKey } from "./uid-key.js";

/**
 * Push devices in MySQL (see PushDeviceStore): push_devices rows on the uid's instance, each
 * write there (sharded: behind the uid's slot fence), each read one primary-key range.
 */
export class MysqlPushDeviceStore implements PushDeviceStore {
  constructor(private readonly placement: KeyPlacement) {}

  /**
   * An upsert, then a DELETE of what lies past the newest maxPerUser; two statements, each
   * atomic and idempotent (two registrations at once each trim to the limit).
   */
  async register(device: PushDeviceRecord, maxPerUser: number): Promise<number> {
    const key = uidKey(device.uid);
    const keep = Math.max(1, Math.floor(maxPerUser));
    return this.call("push device register", () =>
      this.placement.write(key, async (db) => {
        await db.query(
          `INSERT INTO push_devices (uid, device_id, provider, device_kind, token, updated_at) VALUES (?, ?, ?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE provider = VALUES(provider), device_kind = VALUES(device_kind),
             token = VALUES(token), updated_at = VALUES(updated_at)`,
          [key, device.deviceId, device.provider, device.kind, device.token, device.updatedAt],
        );
        // The derived table lets MariaDB take a LIMIT inside NOT IN.
        const [trimmed] = await db.query<ResultSetHeader>(
          `DELETE FROM push_devices WHERE uid = ? AND device_id NOT IN (
             SELECT device_id FROM (
               SELECT device_id FROM push_devices WHERE uid = ? ORDER BY updated_at DESC, device_id LIMIT ?
             ) AS newest)`,
          [key, key, keep],
        );
        return trimmed.affectedRows;
      }),
    );
  }

  async unregister(uid: Uid, deviceId: string): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    const key = uidKey(uid);
    const [result] = await this.call("push device unregister", () =>
      this.placement.write(key, (db) =>
        db.query<ResultSetHeader>("DELETE FROM push_devices WHERE uid = ? AND device_id = ?", [key, deviceId]),
      ),
    );
    return result.affectedRows > 0;
  }

  async unregisterAll(uid: Uid): Promise<number> {
    if (!isDecimalId(uid)) return 0;
    const key = uidKey(uid);
    const [result] = await this.call("push devices unregister", () =>
      this.placement.write(key, (db) => db.query<ResultSetHeader>("DELETE FROM push_devices WHERE uid = ?", [key])),
    );
    return result.affectedRows;
  }

  async list(uid: Uid): Promise<PushDeviceRecord[]> {
    if (!isDecimalId(uid)) return [];
    const key = uidKey(uid);
    const [rows] = await this.call("push devices", () =>
      this.placement.pool(this.placement.instanceOf(key)).query<RowDataPacket[]>(
        `SELECT uid, device_id, provider, device_kind, token, updated_at FROM push_devices WHERE uid = ?
            ORDER BY updated_at DESC, device_id`,
        [key],
      ),
    );
    return rows.map((r) => ({
      uid: storedId(r.uid),
      deviceId: String(r.device_id),
      provider: String(r.provider) as PushProviderName,
      kind: pushDeviceKindOf(r.device_kind, String(r.provider) as PushProviderName),
      token: String(r.token),
      updatedAt: Number(r.updated_at),
    }));
  }

  async drop(uid: Uid, deviceId: string, token: string): Promise<boolean> {
    if (!isDecimalId(uid)) return false;
    const key = uidKey(uid);
    const [result] = await this.call("push device drop", () =>
      this.placement.write(key, (db) =>
        db.query<ResultSetHeader>("DELETE FROM push_devices WHERE uid = ? AND device_id = ? AND token = ?", [
          key,
          deviceId,
          token,
        ]),
      ),
    );
    return result.affectedRows > 0;
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

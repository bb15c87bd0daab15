import { ErrorCode } from "../../errors.js";
import {
  type PushDeviceRecord,
  type PushDeviceStore,
  type PushProviderName,
  pushDeviceKindOf,
  type Uid,
} from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

interface DeviceRow {
  uid: Uid;
  device_id: string;
  provider: PushProviderName;
  device_kind: string;
  token: string;
  updated_at: number;
}

/** Push devices in the SQLite file: the same push_devices rows as MySQL. */
export class SqlitePushDeviceStore implements PushDeviceStore {
  readonly #register;
  readonly #unregister;
  readonly #unregisterAll;
  readonly #list;
  readonly #drop;

  constructor(db: SqliteDatabase) {
    const upsert = db.prepare<[string, string, string, string, string, number]>(
      `INSERT INTO push_devices (uid, device_id, provider, device_kind, token, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (uid, device_id) DO UPDATE SET provider = excluded.provider, device_kind = excluded.device_kind,
         token = excluded.token, updated_at = excluded.updated_at`,
    );
    // Everything past the newest maxPerUser (the device just registered is the newest).
    const trim = db.prepare<[string, string, number]>(
      `DELETE FROM push_devices WHERE uid = ? AND device_id NOT IN (
         SELECT device_id FROM push_devices WHERE uid = ? ORDER BY updated_at DESC, device_id LIMIT ?)`,
    );
    this.#register = db.transaction((device: PushDeviceRecord, maxPerUser: number) => {
      const uid = requireCanonicalId(device.uid);
      upsert.run(uid, device.deviceId, device.provider, device.kind, device.token, device.updatedAt);
      return trim.run(uid, uid, Math.max(1, Math.floor(maxPerUser))).changes;
    });
    this.#unregister = db.prepare<[string, string]>("DELETE FROM push_devices WHERE uid = ? AND device_id = ?");
    this.#unregisterAll = db.prepare<[string]>("DELETE FROM push_devices WHERE uid = ?");
    this.#list = db.prepare<[string], DeviceRow>(
      `SELECT uid, device_id, provider, device_kind, token, updated_at FROM push_devices WHERE uid = ?
        ORDER BY updated_at DESC, device_id`,
    );
    this.#drop = db.prepare<[string, string, string]>(
      "DELETE FROM push_devices WHERE uid = ? AND device_id = ? AND token = ?",
    );
  }

  async register(device: PushDeviceRecord, maxPerUser: number): Promise<number> {
    return run(() => this.#register.immediate(device, maxPerUser));
  }

  async unregister(uid: Uid, deviceId: string): Promise<boolean> {
    const key = canonicalId(uid);
    if (key === null) return false;
    return run(() => this.#unregister.run(key, deviceId).changes > 0);
  }

  async unregisterAll(uid: Uid): Promise<number> {
    const key = canonicalId(uid);
    if (key === null) return 0;
    return run(() => this.#unregisterAll.run(key).changes);
  }

  async list(uid: Uid): Promise<PushDeviceRecord[]> {
    const key = canonicalId(uid);
    if (key === null) return [];
    return run(() =>
      this.#list.all(key).map((r) => ({
        uid: r.uid,
        deviceId: r.device_id,
        provider: r.provider,
        kind: pushDeviceKindOf(r.device_kind, r.provider),
        token: r.token,
        updatedAt: Number(r.updated_at),
      })),
    );
  }

  async drop(uid: Uid, deviceId: string, token: string): Promise<boolean> {
    const key = canonicalId(uid);
    if (key === null) return false;
    return run(() => this.#drop.run(key, deviceId, token).changes > 0);
  }
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite push devices", work);
}

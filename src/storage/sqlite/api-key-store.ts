import { ErrorCode } from "../../errors.js";
import { checkApiKey, isApiKeyId, oldestFirst } from "../mysql/api-key-store.js";
import { checkBan } from "../mysql/ban-store.js";
import type { ApiKeyRecord, ApiKeyStore, BanRecord, BanStore, ShardSize, StorageStats, Uid } from "../ports.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

interface KeyRow {
  key_id: string;
  name: string;
  secret_digest: string;
  created_at: number;
  revoked_at: number;
}

function toKey(r: KeyRow): ApiKeyRecord {
  return {
    id: r.key_id,
    name: r.name,
    secretDigest: r.secret_digest,
    createdAt: Number(r.created_at),
    revokedAt: Number(r.revoked_at),
  };
}

/** API keys in the SQLite file: the same table as MysqlApiKeyStore's. */
export class SqliteApiKeyStore implements ApiKeyStore {
  readonly #insert;
  readonly #byId;
  readonly #all;
  readonly #revoke;

  constructor(db: SqliteDatabase) {
    this.#insert = db.prepare<[string, string, string, number, number]>(
      "INSERT INTO api_keys (key_id, name, secret_digest, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)",
    );
    this.#byId = db.prepare<[string], KeyRow>(
      "SELECT key_id, name, secret_digest, created_at, revoked_at FROM api_keys WHERE key_id = ?",
    );
    this.#all = db.prepare<[], KeyRow>("SELECT key_id, name, secret_digest, created_at, revoked_at FROM api_keys");
    this.#revoke = db.prepare<[number, string]>(
      "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at = 0",
    );
  }

  async create(key: ApiKeyRecord): Promise<void> {
    checkApiKey(key);
    run(() => this.#insert.run(key.id, key.name, key.secretDigest, key.createdAt, key.revokedAt));
  }

  async byId(id: string): Promise<ApiKeyRecord | null> {
    if (!isApiKeyId(id)) return null;
    const row = run(() => this.#byId.get(id));
    return row ? toKey(row) : null;
  }

  async list(): Promise<ApiKeyRecord[]> {
    return oldestFirst(run(() => this.#all.all()).map(toKey));
  }

  async revoke(id: string, atMs: number): Promise<boolean> {
    if (!isApiKeyId(id)) return false;
    return run(() => this.#revoke.run(atMs, id)).changes > 0;
  }
}

interface BanRow {
  uid: Uid;
  until_ms: number;
  reason: string;
  created_at: number;
}

/** Bans in the SQLite file: the same table as MysqlBanStore's. */
export class SqliteBanStore implements BanStore {
  readonly #upsert;
  readonly #delete;
  readonly #get;

  constructor(db: SqliteDatabase) {
    this.#upsert = db.prepare<[string, number, string, number]>(
      `INSERT INTO user_bans (uid, until_ms, reason, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (uid) DO UPDATE SET until_ms = excluded.until_ms, reason = excluded.reason, created_at = excluded.created_at`,
    );
    this.#delete = db.prepare<[string]>("DELETE FROM user_bans WHERE uid = ?");
    this.#get = db.prepare<[string], BanRow>("SELECT uid, until_ms, reason, created_at FROM user_bans WHERE uid = ?");
  }

  async ban(ban: BanRecord): Promise<void> {
    checkBan(ban);
    const uid = requireCanonicalId(ban.uid);
    run(() => this.#upsert.run(uid, ban.untilMs, ban.reason, ban.createdAt));
  }

  async unban(uid: Uid): Promise<boolean> {
    const id = canonicalId(uid);
    if (id === null) return false;
    return run(() => this.#delete.run(id)).changes > 0;
  }

  async byUid(uid: Uid): Promise<BanRecord | null> {
    const id = canonicalId(uid);
    if (id === null) return null;
    const row = run(() => this.#get.get(id));
    return row
      ? { uid: row.uid, untilMs: Number(row.until_ms), reason: row.reason, createdAt: Number(row.created_at) }
      : null;
  }
}

/** The one file's rows of users and messages. */
export class SqliteStorageStats implements StorageStats {
  readonly #count;

  constructor(
    db: SqliteDatabase,
    private readonly name = "sqlite",
  ) {
    this.#count = db.prepare<[], { users: number; messages: number }>(
      "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM messages) AS messages",
    );
  }

  async sizes(): Promise<ShardSize[]> {
    const row = run(() => this.#count.get());
    return [{ instance: this.name, users: Number(row?.users ?? 0), messages: Number(row?.messages ?? 0) }];
  }
}

function run<T>(work: () => T): T {
  return sqliteCall(ErrorCode.STORAGE_UNAVAILABLE, "sqlite server api", work);
}

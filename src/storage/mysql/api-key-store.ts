import type { ResultSetHeader, RowDataPacket } from "mysql2/promise";
import { AppError, ErrorCode } from "../../errors.js";
import { fitsChars } from "../../text/chars.js";
import { ADMIN_COLUMN_CHARS, type ApiKeyRecord, type ApiKeyStore } from "../ports.js";
import type { KeyPlacement } from "./block-store.js";
import { mysqlCall } from "./errors.js";

/** An API key's placement key: global rows spread like reports, one key on one instance. */
export function apiKeyKey(id: string): string {
  return `apikey:${id}`;
}

/** What the key_id column holds: the CLI's base64url ids. */
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Whether id can name a key (anything else is no key: no read is made). */
export function isApiKeyId(id: string): boolean {
  return typeof id === "string" && KEY_ID.test(id);
}

/** What the columns would refuse or misread (INVALID_ARGUMENT). */
export function checkApiKey(key: ApiKeyRecord): void {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, why);
  if (!isApiKeyId(key.id)) throw bad("an API key id is 1..32 base64url characters");
  if (typeof key.name !== "string" || key.name.trim() === "" || !fitsChars(key.name, ADMIN_COLUMN_CHARS.apiKeyName)) {
    throw bad(`an API key's name is 1..${ADMIN_COLUMN_CHARS.apiKeyName} characters`);
  }
  if (!/^[0-9a-f]{64}$/.test(key.secretDigest)) throw bad("secretDigest must be a SHA-256 in hex");
  if (!Number.isSafeInteger(key.createdAt) || !Number.isSafeInteger(key.revokedAt)) throw bad("times are integers");
}

/** Oldest first; keys of the same millisecond by id. */
export function oldestFirst(keys: ApiKeyRecord[]): ApiKeyRecord[] {
  return keys.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** API keys in MySQL, each on the instance of "apikey:" + its id; the list read from every instance. */
export class MysqlApiKeyStore implements ApiKeyStore {
  constructor(private readonly placement: KeyPlacement) {}

  async create(key: ApiKeyRecord): Promise<void> {
    checkApiKey(key);
    await this.call("api key", () =>
      this.placement.write(apiKeyKey(key.id), (db) =>
        db.query("INSERT INTO api_keys (key_id, name, secret_digest, created_at, revoked_at) VALUES (?, ?, ?, ?, ?)", [
          key.id,
          key.name,
          key.secretDigest,
          key.createdAt,
          key.revokedAt,
        ]),
      ),
    );
  }

  async byId(id: string): Promise<ApiKeyRecord | null> {
    if (!isApiKeyId(id)) return null;
    const [rows] = await this.call("api key", () =>
      this.placement
        .pool(this.placement.instanceOf(apiKeyKey(id)))
        .query<RowDataPacket[]>(
          "SELECT key_id, name, secret_digest, created_at, revoked_at FROM api_keys WHERE key_id = ?",
          [id],
        ),
    );
    const row = rows[0];
    return row ? toKey(row) : null;
  }

  async list(): Promise<ApiKeyRecord[]> {
    const pages = await this.call("api keys", () =>
      Promise.all(
        this.placement.instances().map(async (instance) => {
          const [rows] = await this.placement
            .pool(instance)
            .query<RowDataPacket[]>("SELECT key_id, name, secret_digest, created_at, revoked_at FROM api_keys");
          return rows.map(toKey);
        }),
      ),
    );
    return oldestFirst(pages.flat());
  }

  async revoke(id: string, atMs: number): Promise<boolean> {
    if (!isApiKeyId(id)) return false;
    const [result] = await this.call("api key revoke", () =>
      this.placement.write(apiKeyKey(id), (db) =>
        db.query<ResultSetHeader>("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at = 0", [atMs, id]),
      ),
    );
    return result.affectedRows > 0;
  }

  private call<T>(what: string, work: () => Promise<T>): Promise<T> {
    return mysqlCall(ErrorCode.STORAGE_UNAVAILABLE, what, work);
  }
}

function toKey(row: RowDataPacket): ApiKeyRecord {
  return {
    id: String(row.key_id),
    name: String(row.name),
    secretDigest: String(row.secret_digest),
    createdAt: Number(row.created_at),
    revokedAt: Number(row.revoked_at),
  };
}

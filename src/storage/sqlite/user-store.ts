import { AppError, ErrorCode } from "../../errors.js";
import type { Uid, UserRecord, UserStore } from "../ports.js";
import { USER_COLUMNS, type UserRow, userRecordOf } from "../user-row.js";
import type { SqliteDatabase } from "./database.js";
import { sqliteCall, sqliteCode } from "./errors.js";
import { canonicalId, requireCanonicalId } from "./uids.js";

/** SQLite names the columns of a failed UNIQUE constraint: "UNIQUE constraint failed: users.name". */
function takenError(err: unknown): AppError | null {
  if (sqliteCode(err) !== "SQLITE_CONSTRAINT_UNIQUE") return null;
  const message = (err as Error).message;
  if (message.includes("users.name")) return new AppError(ErrorCode.USER_EXISTS);
  if (message.includes("users.email")) return new AppError(ErrorCode.EMAIL_EXISTS);
  return null;
}

/** Accounts in the users table of the SQLite file (names and emails unique by COLLATE NOCASE). */
export class SqliteUserStore implements UserStore {
  readonly #byUid;
  readonly #byName;
  readonly #byEmail;
  readonly #insert;
  readonly #setPassword;
  readonly #existing;
  readonly #byNamePrefix;
  readonly #delete;
  readonly #rename;

  constructor(db: SqliteDatabase) {
    this.#rename = db.prepare<[string, string]>("UPDATE users SET name = ? WHERE uid = ?");
    this.#byUid = db.prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE uid = ?`);
    this.#byName = db.prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE name = ? LIMIT 1`);
    this.#byEmail = db.prepare<[string], UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE email = ? LIMIT 1`);
    this.#insert = db.prepare<[string, string, string, string, number]>(
      "INSERT INTO users (uid, name, email, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
    );
    this.#setPassword = db.prepare<[string, string]>("UPDATE users SET password_hash = ? WHERE uid = ?");
    this.#delete = db.prepare<[string]>("DELETE FROM users WHERE uid = ?");
    this.#byNamePrefix = db.prepare<[string, number], UserRow>(
      `SELECT ${USER_COLUMNS} FROM users WHERE name LIKE ? ESCAPE '!' ORDER BY name, uid LIMIT ?`,
    );
    // json_each takes any number of uids in one statement (no host-parameter limit).
    this.#existing = db.prepare<[string], { uid: Uid }>(
      "SELECT uid FROM users WHERE uid IN (SELECT value FROM json_each(?))",
    );
  }

  async create(user: UserRecord): Promise<void> {
    const uid = requireCanonicalId(user.uid);
    this.#run(() => {
      try {
        this.#insert.run(uid, user.name, user.email.trim().toLowerCase(), user.passwordHash, user.createdAt);
      } catch (err) {
        throw takenError(err) ?? err;
      }
    });
  }

  async byUid(uid: Uid): Promise<UserRecord | null> {
    const canonical = canonicalId(uid);
    if (canonical === null) return null;
    return this.#one(this.#byUid, canonical);
  }

  async byName(name: string): Promise<UserRecord | null> {
    return this.#one(this.#byName, name);
  }

  async byEmail(email: string): Promise<UserRecord | null> {
    return this.#one(this.#byEmail, email.trim().toLowerCase());
  }

  async setPassword(uid: Uid, passwordHash: string): Promise<void> {
    const canonical = canonicalId(uid);
    if (canonical === null) return;
    this.#run(() => this.#setPassword.run(passwordHash, canonical));
  }

  async rename(uid: Uid, name: string): Promise<boolean> {
    const canonical = canonicalId(uid);
    if (canonical === null) return false;
    return this.#run(() => {
      try {
        return this.#rename.run(name, canonical).changes > 0;
      } catch (err) {
        throw takenError(err) ?? err;
      }
    });
  }

  /** One DELETE of the row: its name and email are free again. */
  async delete(uid: Uid): Promise<boolean> {
    const canonical = canonicalId(uid);
    if (canonical === null) return false;
    return this.#run(() => this.#delete.run(canonical).changes > 0);
  }

  async searchByNamePrefix(prefix: string, limit: number): Promise<UserRecord[]> {
    const max = Math.max(0, Math.floor(limit));
    if (typeof prefix !== "string" || prefix === "" || max === 0) return [];
    // LIKE is case-insensitive for ASCII in SQLite, as NOCASE is.
    return this.#run(() =>
      this.#byNamePrefix.all(`${prefix.replace(/[!%_]/g, (c) => `!${c}`)}%`, max).map(userRecordOf),
    );
  }

  async existing(uids: Uid[]): Promise<Set<Uid>> {
    const wanted = [...new Set(uids.map(canonicalId).filter((uid) => uid !== null))];
    if (wanted.length === 0) return new Set();
    return this.#run(() => new Set(this.#existing.all(JSON.stringify(wanted)).map((row) => row.uid)));
  }

  #one(statement: { get(value: string): UserRow | undefined }, value: string): UserRecord | null {
    return this.#run(() => {
      const row = statement.get(value);
      return row ? userRecordOf(row) : null;
    });
  }

  #run<T>(work: () => T): T {
    return sqliteCall(ErrorCode.UNAVAILABLE, "sqlite users", work);
  }
}

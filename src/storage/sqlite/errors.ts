import { AppError, type ErrorCode } from "../../errors.js";

/** A better-sqlite3 SqliteError code (SQLITE_BUSY, SQLITE_CONSTRAINT_UNIQUE, ...). */
export function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_") ? code : undefined;
}

/** Result codes (primary code before any _EXTENDED suffix) that mean "the database cannot serve now". */
const UNAVAILABLE_PRIMARY = new Set([
  "SQLITE_BUSY",
  "SQLITE_LOCKED",
  "SQLITE_IOERR",
  "SQLITE_FULL",
  "SQLITE_CANTOPEN",
  "SQLITE_READONLY",
  "SQLITE_NOMEM",
  "SQLITE_PROTOCOL",
  "SQLITE_CORRUPT",
  "SQLITE_NOTADB",
]);

/**
 * Whether err says the database is unusable (closed, locked by another process for longer
 * than the busy timeout, out of disk, unreadable) rather than that the query was wrong.
 */
export function isSqliteUnavailable(err: unknown): boolean {
  if (err instanceof TypeError && /database connection is not open/i.test(err.message)) return true;
  const code = sqliteCode(err);
  if (!code) return false;
  if (UNAVAILABLE_PRIMARY.has(code)) return true;
  const primary = code.split("_").slice(0, 2).join("_");
  // A missing table is not here (as with MySQL, mysql/errors.ts): a file never migrated is a
  // deployment fault, answered INTERNAL and logged.
  return UNAVAILABLE_PRIMARY.has(primary);
}

/** Runs a synchronous database call, mapping "cannot serve now" to `unavailable`; other errors stay. */
export function sqliteCall<T>(unavailable: ErrorCode, what: string, work: () => T): T {
  try {
    return work();
  } catch (err) {
    throw sqliteError(unavailable, what, err);
  }
}

/** err as sqliteCall throws it. */
export function sqliteError(unavailable: ErrorCode, what: string, err: unknown): unknown {
  if (err instanceof AppError || !isSqliteUnavailable(err)) return err;
  return new AppError(unavailable, `${what}: ${sqliteCode(err) ?? ""} ${(err as Error).message}`.trim());
}

import { AppError, ErrorCode } from "../../errors.js";

/**
 * The one reading of mysql2's failures, shared by every MySQL store and the sharded layer
 * (SQLite's is sqlite/errors.ts): the database cannot serve now, the values were refused, or
 * neither (a bug, or a constraint the caller handles itself, such as a duplicate key).
 */

/** The driver's error code (`ER_DUP_ENTRY`, `ECONNREFUSED`, ...), if err has one. */
export function mysqlCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** mysql2's duplicate-key error. */
export function isDuplicateKey(err: unknown): boolean {
  return mysqlCode(err) === "ER_DUP_ENTRY";
}

/**
 * The instance not answering at all (down, frozen, unreachable), as opposed to refusing one
 * statement: trying the items of a failed batch one by one would only make each wait for the
 * same timeout again.
 */
const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "POOL_CLOSED",
  "POOL_ACQUIRE_TIMEOUT",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
]);

/**
 * The database is unreachable (above), overloaded or refusing writes for now. A missing database
 * or table is not here: that is a deployment without its migration, which the caller answers
 * INTERNAL and logs.
 */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  ...UNREACHABLE_CODES,
  "ER_CON_COUNT_ERROR",
  "ER_TOO_MANY_USER_CONNECTIONS",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_LOCK_DEADLOCK",
  "ER_QUERY_INTERRUPTED",
  "ER_OPTION_PREVENTS_STATEMENT",
  "ER_READ_ONLY_MODE",
  "ER_ACCESS_DENIED_ERROR",
  "ER_DBACCESS_DENIED_ERROR",
  "ER_OUT_OF_RESOURCES",
  "ER_OUTOFMEMORY",
]);

export function isUnreachable(err: unknown): boolean {
  const code = mysqlCode(err);
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/** Values the column types refuse (strict mode): the caller's input, not the database. */
const INVALID_VALUE_CODES: ReadonlySet<string> = new Set([
  "ER_DATA_TOO_LONG",
  "ER_TRUNCATED_WRONG_VALUE",
  "ER_TRUNCATED_WRONG_VALUE_FOR_FIELD",
  "ER_WARN_DATA_OUT_OF_RANGE",
]);

export type MysqlFailure = "unavailable" | "invalid";

/** What a driver failure means (undefined: neither; see the top of this file). */
export function mysqlFailure(err: unknown): MysqlFailure | undefined {
  if (err instanceof AppError) return undefined;
  const code = mysqlCode(err);
  const fatal = (err as { fatal?: unknown } | null)?.fatal === true;
  if (fatal || (code && UNAVAILABLE_CODES.has(code)) || (err as Error)?.message === "Pool is closed.") {
    return "unavailable";
  }
  if (code && INVALID_VALUE_CODES.has(code)) return "invalid";
  return undefined;
}

/**
 * err in the error table: `unavailable` (STORAGE_UNAVAILABLE for chat data, UNAVAILABLE for
 * the user directory, as gate and status answer it) or INVALID_ARGUMENT; anything else as it is.
 */
export function mysqlError(unavailable: ErrorCode, what: string, err: unknown): unknown {
  const failure = mysqlFailure(err);
  if (!failure) return err;
  const message = (err as Error)?.message ?? String(err);
  if (failure === "invalid") return new AppError(ErrorCode.INVALID_ARGUMENT, message);
  return new AppError(unavailable, `${what}: ${mysqlCode(err) ?? ""} ${message}`.trim());
}

/** Runs a driver call, its failure as mysqlError has it. */
export async function mysqlCall<T>(unavailable: ErrorCode, what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw mysqlError(unavailable, what, err);
  }
}

import { AppError, ErrorCode } from "../../errors.js";

/**
 * Runs a query of the sharding layer itself (index tables); a driver failure (it carries a
 * code, or the pool is closed) becomes AppError(code), anything else (a bug) stays as it is.
 */
export async function shardCall<T>(code: ErrorCode, what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof AppError) throw err;
    const e = err as { code?: unknown; fatal?: unknown; message?: unknown } | null;
    const message = typeof e?.message === "string" ? e.message : String(err);
    if (typeof e?.code === "string" && INVALID_VALUE_CODES.has(e.code))
      throw new AppError(ErrorCode.INVALID_ARGUMENT, message);
    if (typeof e?.code === "string" || e?.fatal === true || message === "Pool is closed.") {
      throw new AppError(code, `${what}: ${typeof e?.code === "string" ? e.code : ""} ${message}`.trim());
    }
    throw err;
  }
}

/** Values the column types refuse (strict mode): the caller's input, not the database. */
const INVALID_VALUE_CODES = new Set(["ER_DATA_TOO_LONG", "ER_TRUNCATED_WRONG_VALUE", "ER_WARN_DATA_OUT_OF_RANGE"]);

export const STORAGE = ErrorCode.STORAGE_UNAVAILABLE;
export const USERS = ErrorCode.UNAVAILABLE;

/** mysql2's duplicate-key error. */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === "ER_DUP_ENTRY";
}

import { ErrorCode, errorCodeToJSON } from "./gen/shardchat/v1/common.js";

export { ErrorCode };

/** A failure with a code from the one error table (proto/shardchat/v1/common.proto). */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message?: string,
  ) {
    super(message ?? errorName(code));
    this.name = "AppError";
  }
}

/**
 * An AppError whose answer carries fields a client acts on beyond its code (ACCOUNT_BANNED: the
 * ban's reason and end); gate sends them as `details`.
 */
export class DetailedError extends AppError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly details: Record<string, string | number>,
  ) {
    super(code, message);
  }
}

/** "TOKEN_INVALID" for ErrorCode.TOKEN_INVALID. */
export function errorName(code: ErrorCode): string {
  return errorCodeToJSON(code).replace(/^ERROR_CODE_/, "");
}

/** The code of any thrown value: an AppError's own, INTERNAL for anything else. */
export function codeOf(err: unknown): ErrorCode {
  return err instanceof AppError ? err.code : ErrorCode.INTERNAL;
}

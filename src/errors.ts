import { AppError, codeOf, ErrorCode, errorName } from "../packages/protocol/src/errors.js";

// The one error-code table and AppError live with the client protocol (packages/protocol), which
// the SDK ships too; what follows is the server's own use of them (client texts, gRPC, HTTP).
export { AppError, codeOf, DetailedError, ErrorCode, errorName } from "../packages/protocol/src/errors.js";

/**
 * Codes whose messages come from the infrastructure (driver texts, internal addresses): logged
 * where they happen, never shown to a client, which gets the code's name instead.
 */
const INFRASTRUCTURE_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.INTERNAL,
  ErrorCode.UNAVAILABLE,
  ErrorCode.STORAGE_UNAVAILABLE,
]);

/** What a client may read of err: an AppError's own message, unless its code is the infrastructure's. */
export function clientMessage(err: unknown): string {
  const code = codeOf(err);
  return err instanceof AppError && !INFRASTRUCTURE_CODES.has(code) ? err.message : errorName(code);
}

/** Throws an AppError when a gRPC reply carries a non-OK code. */
export function okOrThrow<T extends { error: ErrorCode }>(reply: T): T {
  if (reply.error !== ErrorCode.OK) throw new AppError(reply.error);
  return reply;
}

const httpStatus: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.OK]: 200,
  [ErrorCode.INVALID_ARGUMENT]: 400,
  [ErrorCode.FRAME_TOO_LARGE]: 413,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.VERIFY_CODE_COOLDOWN]: 429,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.USER_EXISTS]: 409,
  [ErrorCode.EMAIL_EXISTS]: 409,
  [ErrorCode.VERIFY_CODE_WRONG]: 400,
  [ErrorCode.VERIFY_CODE_EXPIRED]: 400,
  [ErrorCode.BAD_CREDENTIALS]: 401,
  [ErrorCode.TOKEN_INVALID]: 401,
  [ErrorCode.TOKEN_EXPIRED]: 401,
  [ErrorCode.UNAVAILABLE]: 503,
  [ErrorCode.NO_CHAT_NODE]: 503,
  [ErrorCode.MAIL_FAILED]: 502,
  [ErrorCode.ACCOUNT_LOCKED]: 429,
  [ErrorCode.INTERNAL]: 500,
  [ErrorCode.NOT_PARTICIPANT]: 403,
  [ErrorCode.NOT_MESSAGE_SENDER]: 403,
  [ErrorCode.CHANGE_WINDOW_CLOSED]: 403,
  [ErrorCode.MESSAGE_RECALLED]: 409,
  [ErrorCode.REACTION_LIMIT]: 409,
  [ErrorCode.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCode.FILE_TOO_LARGE]: 413,
  [ErrorCode.FILE_TYPE_NOT_ALLOWED]: 415,
  [ErrorCode.FILE_MISSING]: 400,
  [ErrorCode.DIRECT_UPLOAD_UNAVAILABLE]: 400,
  [ErrorCode.STORAGE_QUOTA_EXCEEDED]: 413,
  // The Server API (issue 18).
  [ErrorCode.API_KEY_INVALID]: 401,
  [ErrorCode.ACCOUNT_BANNED]: 403,
  [ErrorCode.GROUP_NOT_FOUND]: 404,
  [ErrorCode.PEER_NOT_FOUND]: 404,
  // Webhooks (issue 18): the before-send hook refused the message.
  [ErrorCode.MESSAGE_REJECTED]: 422,
  // Bots (issue 18): a password login or reset for a bot's account.
  [ErrorCode.BOT_ACCOUNT]: 403,
};

/** The HTTP status gate answers with for a code (the body always carries the code itself). */
export function httpStatusOf(code: ErrorCode): number {
  return httpStatus[code] ?? 400;
}

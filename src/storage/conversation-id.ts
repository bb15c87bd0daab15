import { AppError, ErrorCode } from "../errors.js";
import type { Uid } from "./ports.js";

const DECIMAL_UID = /^\d{1,20}$/;

/**
 * The id of the 1:1 conversation of two users: "p:<smaller>:<larger>". Uids are compared as
 * BigInt because snowflakes exceed a JS number and string order is wrong ("9" > "10").
 */
export function convIdForPair(a: Uid, b: Uid): string {
  if (!DECIMAL_UID.test(a) || !DECIMAL_UID.test(b)) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, "uids must be decimal strings");
  }
  const x = BigInt(a);
  const y = BigInt(b);
  const [low, high] = x <= y ? [x, y] : [y, x];
  return `p:${low}:${high}`;
}

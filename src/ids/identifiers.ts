import { AppError, ErrorCode } from "../errors.js";
import { fitsChars } from "../text/chars.js";

/**
 * Identifiers, conversation ids and the column limits of sql/, in one place. The edges (chat
 * handlers, gate routes) check input with these; the stores keep only the guards that stop a
 * value the database would misread (a non-number where a BIGINT goes, a string a column would
 * cut short).
 */

/** A user id as clients send it: a decimal snowflake, no sign, no leading zero. */
const CANONICAL_UID = /^[1-9]\d{0,19}$/;
/** Anything a BIGINT UNSIGNED column can be asked for ("007" is row 7). */
const DECIMAL_ID = /^\d{1,20}$/;
export const MAX_UINT64 = (1n << 64n) - 1n;

/** A uid (or group id) as the wire carries it: a canonical decimal uint64, never 0. */
export function isUid(value: string): boolean {
  // Only 20 digits can pass 2^64 - 1.
  return CANONICAL_UID.test(value) && (value.length < 20 || BigInt(value) <= MAX_UINT64);
}

/** A value a BIGINT id column can be queried with (user, group, file and message ids). */
export function isDecimalId(value: string): boolean {
  return DECIMAL_ID.test(value);
}

/** users.name is VARCHAR(32); register allows [A-Za-z0-9_]{3,32}. */
export const USER_NAME_MAX = 32;

/** Column widths of sql/ (VARCHAR(n) counts characters): longer values are refused, not cut. */
export const COLUMN_CHARS = {
  convId: 64,
  clientMsgId: 64,
  groupName: 64,
  fileName: 255,
  /** user_emails.email and the longest user search. */
  email: 254,
  friendMessage: 500,
} as const;

/**
 * `value` if it is a string of 1..max characters (code points, as a VARCHAR counts them), else
 * INVALID_ARGUMENT naming `what`: the one check of every bounded text field.
 */
export function requireChars(value: unknown, max: number, what: string): string {
  if (typeof value !== "string" || value.length === 0 || !fitsChars(value, max)) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, `${what} must be 1..${max} characters`);
  }
  return value;
}

/** Conversations of a group are "g:<group id>"; 1:1 conversations are "p:<low uid>:<high uid>". */
export const GROUP_CONV_PREFIX = "g:";

export function groupConvId(groupId: string): string {
  return `${GROUP_CONV_PREFIX}${groupId}`;
}

export function isGroupConvId(convId: string): boolean {
  return convId.startsWith(GROUP_CONV_PREFIX);
}

/** The group of a "g:" conversation id, or undefined for any other id. */
export function groupIdOfConv(convId: string): string | undefined {
  return isGroupConvId(convId) ? convId.slice(GROUP_CONV_PREFIX.length) : undefined;
}

const DIRECT_CONV = /^p:(\d{1,20}):(\d{1,20})$/;

/** The two members of a 1:1 conversation id ("p:<low>:<high>"), or undefined for any other id. */
export function directConvMembers(convId: string): [string, string] | undefined {
  const match = DIRECT_CONV.exec(convId);
  return match ? [match[1] as string, match[2] as string] : undefined;
}

/**
 * The id of the 1:1 conversation of two users: "p:<smaller>:<larger>". Uids are compared as
 * BigInt because snowflakes exceed a JS number and string order is wrong ("9" > "10").
 */
export function convIdForPair(a: string, b: string): string {
  if (!isDecimalId(a) || !isDecimalId(b)) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, "uids must be decimal strings");
  }
  const x = BigInt(a);
  const y = BigInt(b);
  const [low, high] = x <= y ? [x, y] : [y, x];
  return `p:${low}:${high}`;
}

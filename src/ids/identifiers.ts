import type { DecimalId, Uid } from "../../packages/protocol/src/ids.js";
import { AppError, ErrorCode } from "../errors.js";
import { fitsChars } from "../text/chars.js";

/**
 * Identifiers, conversation ids and the column limits of sql/, in one place. The edges (chat
 * handlers, gate routes) check input with these; the stores keep only the guards that stop a
 * value the database would misread (a non-number where a BIGINT goes, a string a column would
 * cut short).
 */

/**
 * Uid: a user id (or group id) that was checked, a canonical decimal uint64; DecimalId: any
 * decimal uint64 id. Both are the client protocol's (the SDK types its answers with them). Only
 * isUid and requireUid make a Uid from outside input (the edges); what storage reads back it
 * stored checked, so its rows are typed with it. Inside, a Uid is trusted and not checked again.
 * A string literal such as "1001" is one by its type, which keeps tests readable.
 */
export type { DecimalId, Uid };

/** A user id as clients send it: a decimal snowflake, no sign, no leading zero. */
const CANONICAL_UID = /^[1-9]\d{0,19}$/;
/** Anything a BIGINT UNSIGNED column can be asked for ("007" is row 7). */
const DECIMAL_ID = /^\d{1,20}$/;
export const MAX_UINT64 = (1n << 64n) - 1n;

/** A uid (or group id) as the wire carries it: a canonical decimal uint64, never 0. */
export function isUid(value: string): value is Uid {
  // Only 20 digits can pass 2^64 - 1.
  return CANONICAL_UID.test(value) && (value.length < 20 || BigInt(value) <= MAX_UINT64);
}

/**
 * A BIGINT id column's value as a driver returns it (a string, a number or a bigint): storage
 * only ever stored checked ids, so what it reads back is typed, not checked again.
 */
export function storedId(value: unknown): DecimalId {
  return String(value) as DecimalId;
}

/**
 * Uids that were checked where they entered the cluster (a peer chat node's push, a stored row):
 * typed, not checked again.
 */
export function checkedUids(uids: string[]): Uid[] {
  return uids as Uid[];
}

/** One uid as checkedUids takes them. */
export function checkedUid(uid: string): Uid {
  return uid as Uid;
}

/** The uid of a number: what generators and tests make ids from. */
export function uidOf(n: number | bigint): Uid {
  return `${BigInt(n)}` as const;
}

/** `value` as a Uid, or INVALID_ARGUMENT naming `what`. */
export function requireUid(value: string, what: string): Uid {
  if (!isUid(value)) throw new AppError(ErrorCode.INVALID_ARGUMENT, `${what} must be a decimal user id`);
  return value;
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
  /** files.content_type. */
  contentType: 127,
  /** user_emails.email and the longest user search. */
  email: 254,
  friendMessage: 500,
  /** message_reactions.emoji: one emoji with its modifiers. */
  reaction: 32,
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
export function directConvMembers(convId: string): [Uid, Uid] | undefined {
  const match = DIRECT_CONV.exec(convId);
  return match ? [match[1] as Uid, match[2] as Uid] : undefined;
}

/**
 * The id of the 1:1 conversation of two users: "p:<smaller>:<larger>". Uids are compared as
 * BigInt because snowflakes exceed a JS number and string order is wrong ("9" > "10"); they were
 * checked at the edge, so BigInt cannot meet garbage here.
 */
export function convIdForPair(a: Uid, b: Uid): string {
  const x = BigInt(a);
  const y = BigInt(b);
  const [low, high] = x <= y ? [x, y] : [y, x];
  return `p:${low}:${high}`;
}

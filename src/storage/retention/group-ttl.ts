import { AppError, ErrorCode } from "../../errors.js";
import type { GroupRecord } from "../ports.js";

/** The largest TTL chat_groups.message_ttl_seconds holds (INT UNSIGNED): 136 years. */
export const MAX_TTL_SECONDS = 4_294_967_295;

/** A group's TTL as GroupRecord carries it: present only when the group has one of its own. */
export function groupTtlOf(row: object): Pick<GroupRecord, "messageTtlSeconds"> {
  const ttl = Number((row as { message_ttl_seconds?: unknown }).message_ttl_seconds ?? 0);
  return ttl > 0 ? { messageTtlSeconds: ttl } : {};
}

/** A TTL for the column (INVALID_ARGUMENT otherwise): an integer from 0 to MAX_TTL_SECONDS. */
export function checkTtlSeconds(ttlSeconds: number): number {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > MAX_TTL_SECONDS) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, `a TTL is 0 to ${MAX_TTL_SECONDS} seconds`);
  }
  return ttlSeconds;
}

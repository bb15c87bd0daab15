import { AppError, ErrorCode } from "../errors.js";
import type { MessageEffect, Uid } from "./ports.js";

/**
 * Blocks (issue 17), what every backend shares: the mark on a pair's 1:1 conversation row
 * (conversations.blocked) and what it refuses besides the append.
 */

/**
 * uid's bit in the pair's conversations.blocked: in "p:<low>:<high>", 1 is the lower uid's
 * block of the higher, 2 the higher's block of the lower.
 */
export function blockBit(uid: Uid, other: Uid): 1 | 2 {
  return BigInt(uid) < BigInt(other) ? 1 : 2;
}

/**
 * A change to a message of a blocked pair's conversation (its row's mark): an edit or a
 * reaction, pushed to the other like a message, is refused with BLOCKED; a recall, which only
 * takes content away, goes through.
 */
export function refuseBlockedChange(blocked: unknown, effect: MessageEffect): void {
  if (Number(blocked ?? 0) !== 0 && effect.kind !== "recall") throw new AppError(ErrorCode.BLOCKED);
}

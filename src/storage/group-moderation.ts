import { AppError, ErrorCode } from "../errors.js";
import { GROUP_ROLE, type GroupRecord, type Uid } from "./ports.js";

/**
 * Group moderation's storage rules (issue 17), shared by every backend: who may post, and how
 * the moderation columns of chat_groups read as a GroupRecord.
 */

/**
 * conversations.kind of a dissolved group's conversation (1 is a 1:1 conversation, 2 a group's).
 * Dissolving a group changes its conversation row, which every group append and every message
 * change locks first: a post or a change that reaches the lock after the dissolve committed
 * finds it there, at no extra statement.
 */
export const DISSOLVED_GROUP_CONVERSATION = 3;

/** The TEXT columns' limit (announcement, a join request's message), so both backends refuse alike. */
export const MAX_TEXT_BYTES = 65_535;

/** What a group message's sender is, as one read of its member row and its group row finds it. */
export interface PosterRow {
  /** chat_groups.dissolved (0 or 1). */
  dissolved: unknown;
  muted_all: unknown;
  /** group_members.role; null when the sender is not a member. */
  role: unknown;
  muted_until: unknown;
}

/**
 * Refuses a post, in this order: the group dissolved (GROUP_DISSOLVED), the sender not a member
 * or no such group (NOT_GROUP_MEMBER), the sender muted at sentAtMs, or everyone muted and the
 * sender a plain member (GROUP_MUTED).
 */
export function checkPoster(row: PosterRow | undefined, sentAtMs: number): void {
  if (row && Number(row.dissolved) === 1) throw new AppError(ErrorCode.GROUP_DISSOLVED, "the group was dissolved");
  if (!row || row.role === null || row.role === undefined) throw new AppError(ErrorCode.NOT_GROUP_MEMBER);
  if (Number(row.muted_until ?? 0) > sentAtMs) {
    throw new AppError(ErrorCode.GROUP_MUTED, `muted until ${Number(row.muted_until)}`);
  }
  if (Number(row.muted_all) === 1 && Number(row.role) === GROUP_ROLE.member) {
    throw new AppError(ErrorCode.GROUP_MUTED, "only admins post in this group now");
  }
}

/** The moderation columns of a chat_groups row. */
export interface ModerationColumns {
  muted_all: unknown;
  announcement: unknown;
  announcement_by: unknown;
  announcement_at: unknown;
  join_approval: unknown;
  dissolved: unknown;
}

/** A GroupRecord's moderation fields: each present only when set (a plain group adds none). */
export function moderationOf(row: ModerationColumns): Partial<GroupRecord> {
  const fields: Partial<GroupRecord> = {};
  if (Number(row.muted_all) === 1) fields.mutedAll = true;
  if (typeof row.announcement === "string") {
    fields.announcement = {
      text: row.announcement,
      by: String(row.announcement_by) as Uid,
      atMs: Number(row.announcement_at),
    };
  }
  if (Number(row.join_approval) === 1) fields.joinApproval = true;
  if (Number(row.dissolved) === 1) fields.dissolved = true;
  return fields;
}

/** A text for a TEXT column: at most MAX_TEXT_BYTES (the handlers' character limits are lower). */
export function checkText(text: unknown, what: string): string {
  if (typeof text !== "string" || Buffer.byteLength(text, "utf8") > MAX_TEXT_BYTES) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, `${what} must be a text of at most ${MAX_TEXT_BYTES} bytes`);
  }
  return text;
}

/** A time in ms (an untilMs, a sinceMs): a safe non-negative integer. */
export function checkMs(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AppError(ErrorCode.INVALID_ARGUMENT, `${what} must be a time in ms`);
  }
  return value;
}

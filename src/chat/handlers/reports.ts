import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, requireChars, requireUid } from "../../ids/identifiers.js";
import { isEventKind, type StoredMessage, type Uid } from "../../storage/ports.js";
import type { LoggedInSession, Reply, ReportsContext, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";

/** What is reported: a user, or a message with its sender and a copy of its content as it is now. */
interface Reported {
  uid: Uid;
  convId: string;
  seq: number;
  snapshot: string;
}

/**
 * Reports a user, or a message in a conversation the caller is in, for the operators (issue 17):
 * one row, nobody is told. At most REPORTS_PER_DAY a day per reporter (counted once the target
 * is known to exist, as friend applications are).
 */
export async function report(ctx: ReportsContext, session: LoggedInSession, request: RequestOf<"reportReq">): Reply {
  const me = session.uid;
  const max = ctx.config.REPORT_REASON_MAX_CHARS;
  const reason = requireChars(request.reason.trim(), max, "reason");
  const target = request.convId !== "" ? await reportedMessage(ctx, me, request) : await reportedUser(ctx, me, request);
  await ctx.limits.report(me);
  const reportId = ctx.ids.next();
  await storage(ctx, "report", () =>
    ctx.reports.create({ reportId, reporter: me, ...target, reason, createdAt: Date.now() }),
  );
  return { $case: "reportResp", value: { reportId } };
}

/** A user (not the caller) who exists: PEER_NOT_FOUND otherwise. */
async function reportedUser(ctx: ReportsContext, me: Uid, request: RequestOf<"reportReq">): Promise<Reported> {
  if (request.seq !== 0) throw invalid("seq names a message of conv_id");
  const uid = requireUid(request.uid, "uid");
  if (uid === me) throw invalid("cannot report yourself");
  const existing = await storage(ctx, "user lookup", () => ctx.knownUsers.existing([uid]));
  if (!existing.has(uid)) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${uid}`);
  return { uid, convId: "", seq: 0, snapshot: "" };
}

/**
 * A message as the caller reads it (NOT_PARTICIPANT outside its conversation, NOT_FOUND without
 * it, for an event, or when the caller deleted it for itself); its sender is the reported user
 * (uid, if given, must be it) and its content is copied as it is now.
 */
async function reportedMessage(ctx: ReportsContext, me: Uid, request: RequestOf<"reportReq">): Promise<Reported> {
  const convId = requireChars(request.convId, COLUMN_CHARS.convId, "convId");
  if (!(request.seq >= 1)) throw invalid("seq must be >= 1");
  const message = await storage(ctx, "message read", () => ctx.messages.message(me, convId, request.seq));
  if (!message || message.deletedForMe || isEventKind(message.kind)) {
    throw new AppError(ErrorCode.NOT_FOUND, `no message ${request.seq}`);
  }
  if (request.uid !== "" && request.uid !== "0" && request.uid !== message.sender) {
    throw invalid("uid must be the message's sender (or left out)");
  }
  if (message.sender === me) throw invalid("cannot report your own message");
  return { uid: message.sender, convId, seq: message.seq, snapshot: snapshotOf(message) };
}

/** The message's content as it is now: its text, file name and custom payload (empty once recalled). */
function snapshotOf(m: StoredMessage): string {
  return [m.text, m.file?.name ?? "", m.custom?.payloadJson ?? ""].filter((part) => part !== "").join("\n");
}

import { MessageKind } from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, groupIdOfConv, requireChars } from "../../ids/identifiers.js";
import { sampled } from "../../log/logger.js";
import { GROUP_ROLE, type MessageEffect, type StoredMessage, type Uid } from "../../storage/ports.js";
import { fitsChars } from "../../text/chars.js";
import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";
import { participantsOf } from "./participants.js";
import { asMemberError, namesFile } from "./send.js";

/**
 * Recall, edit and reactions: each a change to a stored message that the store applies under
 * the conversation's lock together with an event at the conversation's next seq (so an offline
 * device gets it by sync). The rules are decided here, against the message as the lock found it.
 */

/** The message a change names: a conversation id and a seq, checked at the edge. */
function targetOf(request: { convId: string; seq: number }): { convId: string; seq: number } {
  requireChars(request.convId, COLUMN_CHARS.convId, "convId");
  if (!(request.seq >= 1)) throw invalid("seq must be >= 1");
  return { convId: request.convId, seq: request.seq };
}

/** Whether `seconds` have passed since the message was sent (a window of 0 is always closed). */
function windowClosed(target: StoredMessage, seconds: number, now: number): boolean {
  return seconds === 0 || now - Number(target.sentAtMs) > seconds * 1000;
}

/** Whether uid runs the group whose conversation this is (admin or owner); false for a 1:1 conversation. */
async function runsGroup(ctx: HandlerContext, convId: string, uid: Uid): Promise<boolean> {
  const groupId = groupIdOfConv(convId);
  const groups = ctx.groups;
  if (groupId === undefined || !groups) return false;
  const role = await storage(ctx, "group role", () => groups.roleOf(groupId, uid));
  return role === GROUP_ROLE.admin || role === GROUP_ROLE.owner;
}

/**
 * Asks the store to apply a change decided by `decide`; a stored event is acked to the actor's
 * cursor and pushed to the conversation's participants and the actor's other devices, like a
 * message.
 */
async function change(
  ctx: HandlerContext,
  session: LoggedInSession,
  target: { convId: string; seq: number },
  decide: (message: StoredMessage) => MessageEffect | null,
) {
  const actor = session.uid;
  const outcome = await storage(ctx, "message change", () =>
    ctx.messages.change({
      convId: target.convId,
      targetSeq: target.seq,
      msgId: ctx.ids.next(),
      actor,
      sentAtMs: Date.now(),
      decide,
    }),
  ).catch(asMemberError(target.convId));
  const event = outcome.event;
  if (event) {
    ctx.delivered.sent(actor, event.convId, event.seq);
    ctx.background(
      participantsOf(ctx, event.convId, actor).then(
        (others) => ctx.fanout.message(event, others, session),
        (err: unknown) =>
          ctx.log.warn(sampled({ err, convId: event.convId }), "cannot read participants; they will sync"),
      ),
    );
  }
  return { event: outcome.event, target: outcome.target };
}

/**
 * Recall for everyone: the sender within MESSAGE_RECALL_WINDOW_SECONDS, a group's admins and
 * owner at any time, the Server API (a privileged session) any message at any time.
 */
export async function recall(ctx: HandlerContext, session: LoggedInSession, request: RequestOf<"recallReq">): Reply {
  const target = targetOf(request);
  const actor = session.uid;
  const admin = session.privileged === true || (await runsGroup(ctx, target.convId, actor));
  const windowSeconds = ctx.config.MESSAGE_RECALL_WINDOW_SECONDS;
  const now = Date.now();
  // The file the recalled message named, as the store's lock found it (decide may run again).
  let file: string | undefined;
  const recalling = (message: StoredMessage): MessageEffect => {
    file = namesFile(message.kind) ? message.file?.id : undefined;
    return { kind: "recall" };
  };
  const outcome = await change(ctx, session, target, (message) => {
    file = undefined;
    if (admin) return message.recalled ? null : recalling(message);
    if (message.sender !== actor) throw new AppError(ErrorCode.NOT_MESSAGE_SENDER, "only its sender recalls a message");
    if (message.recalled) return null;
    if (windowClosed(message, windowSeconds, now)) {
      throw new AppError(ErrorCode.CHANGE_WINDOW_CLOSED, `messages are recalled within ${windowSeconds} s`);
    }
    return recalling(message);
  });
  const recalledFile = file;
  if (outcome.event && recalledFile) await releaseFile(ctx, recalledFile, now);
  return { $case: "recallResp", value: outcome };
}

/**
 * A recalled message no longer keeps its file: the store releases it (unless another message
 * or a forward still names it) and gate's sweep deletes it; this node has no FileStore to. The
 * recall stands either way: a release that fails leaves the file stored.
 */
async function releaseFile(ctx: HandlerContext, fileId: string, atMs: number): Promise<void> {
  await ctx.files
    ?.release(fileId, atMs)
    .catch((err: unknown) => ctx.log.warn({ err, fileId }, "recall: file not released, it stays stored"));
}

/** A new text (or a file's caption), by the sender within MESSAGE_EDIT_WINDOW_SECONDS. */
export async function edit(ctx: HandlerContext, session: LoggedInSession, request: RequestOf<"editReq">): Reply {
  const target = targetOf(request);
  const actor = session.uid;
  const { text } = request;
  const max = ctx.config.CHAT_MAX_TEXT_CHARS;
  if (!fitsChars(text, max)) throw new AppError(ErrorCode.TEXT_TOO_LONG, `text of ${[...text].length} chars > ${max}`);
  const windowSeconds = ctx.config.MESSAGE_EDIT_WINDOW_SECONDS;
  const now = Date.now();
  const outcome = await change(ctx, session, target, (message) => {
    if (message.sender !== actor) throw new AppError(ErrorCode.NOT_MESSAGE_SENDER, "only its sender edits a message");
    if (message.recalled) throw new AppError(ErrorCode.MESSAGE_RECALLED, "a recalled message cannot be edited");
    if (message.kind !== MessageKind.TEXT && !namesFile(message.kind)) {
      throw invalid("only a text message or a file's or voice message's caption is edited");
    }
    if (message.kind === MessageKind.TEXT && text === "") throw invalid("text is required");
    if (windowClosed(message, windowSeconds, now)) {
      throw new AppError(ErrorCode.CHANGE_WINDOW_CLOSED, `messages are edited within ${windowSeconds} s`);
    }
    return { kind: "edit", text, atMs: now };
  });
  return { $case: "editResp", value: outcome };
}

/**
 * A reaction: one emoji (up to MESSAGE_REACTION_MAX_CHARS characters, no spaces or control
 * characters), added or removed by any participant on a message that is not recalled.
 */
export async function react(ctx: HandlerContext, session: LoggedInSession, request: RequestOf<"reactReq">): Reply {
  const target = targetOf(request);
  const emoji = requireChars(request.emoji, ctx.config.MESSAGE_REACTION_MAX_CHARS, "emoji");
  if (/[\s\p{Cc}]/u.test(emoji)) throw invalid("emoji must not contain spaces or control characters");
  const maxDistinct = ctx.config.MESSAGE_REACTIONS_MAX_DISTINCT;
  const outcome = await change(ctx, session, target, (message) => {
    if (message.recalled) throw new AppError(ErrorCode.MESSAGE_RECALLED, "a recalled message takes no reactions");
    return { kind: "react", emoji, add: request.add, maxDistinct };
  });
  return { $case: "reactResp", value: outcome };
}

/** Hides messages from the caller on all of its devices; its other devices are told at once. */
export async function deleteForMe(
  ctx: HandlerContext,
  session: LoggedInSession,
  request: RequestOf<"deleteForMeReq">,
): Reply {
  const convId = requireChars(request.convId, COLUMN_CHARS.convId, "convId");
  const max = ctx.config.MESSAGE_DELETE_FOR_ME_MAX;
  if (request.seqs.length === 0 || request.seqs.length > max) throw invalid(`seqs must name 1..${max} messages`);
  if (request.seqs.some((seq) => !(seq >= 1))) throw invalid("every seq must be >= 1");
  const me = session.uid;
  await storage(ctx, "delete for me", () => ctx.messages.hide(me, convId, request.seqs)).catch(asMemberError(convId));
  ctx.background(
    ctx.fanout.notice(
      [me],
      { reqId: 0, body: { $case: "deletedForMePush", value: { convId, seqs: request.seqs } } },
      session.id,
    ),
  );
  return { $case: "deleteForMeResp", value: {} };
}

import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, convIdForPair, groupConvId, requireChars, requireUid } from "../../ids/identifiers.js";
import { isEventKind, type StoredForwardOrigin, type StoredMessage } from "../../storage/ports.js";
import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";
import { checkGroupId, sendToGroup } from "./groups.js";
import { asMemberError, type PreparedMessage, requireRecipient, sendDirect } from "./send.js";

/**
 * Copies a message into another conversation as the caller's own, naming its origin. The
 * caller must see the original (a participant of its conversation) and may post where it
 * forwards to (the same checks as a send there). A file is not copied: the target
 * conversation is granted access to it, so its participants download the same bytes.
 */
export async function forward(
  ctx: HandlerContext,
  session: LoggedInSession,
  request: RequestOf<"forwardReq">,
  reqId: number,
  turn: { release(): void },
): Reply {
  const me = session.uid;
  const fromConvId = requireChars(request.fromConvId, COLUMN_CHARS.convId, "fromConvId");
  if (!(request.seq >= 1)) throw invalid("seq must be >= 1");
  requireChars(request.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
  const toUser = request.toUid !== "" && request.toUid !== "0";
  const toGroup = request.groupId !== "" && request.groupId !== "0";
  if (toUser === toGroup) throw invalid("forward to exactly one of toUid and groupId");

  const original = await storage(ctx, "message read", () => ctx.messages.message(me, fromConvId, request.seq)).catch(
    asMemberError(fromConvId),
  );
  if (!original || original.deletedForMe) throw new AppError(ErrorCode.NOT_FOUND, `no message ${request.seq}`);
  if (isEventKind(original.kind)) throw invalid("an event is not forwarded");
  if (original.recalled) throw new AppError(ErrorCode.MESSAGE_RECALLED, "a recalled message is not forwarded");

  if (toUser) {
    const to = requireUid(request.toUid, "toUid");
    if (to === me) throw invalid("cannot send to yourself");
    // Blocks are checked before the file is shared into the conversation (the append would refuse later).
    await requireRecipient(ctx, me, to, { blocks: true });
    const prepared = await copyOf(ctx, original, request.clientMsgId, convIdForPair(me, to));
    return sendDirect(ctx, session, to, prepared, { reqId, turn, answer: "forwardResp" });
  }
  checkGroupId(request.groupId);
  const groups = ctx.groups;
  if (!groups) throw new AppError(ErrorCode.UNAVAILABLE, "groups are not served on this chat node");
  const role = await storage(ctx, "group role", () => groups.roleOf(request.groupId, me));
  if (role === null) {
    // A dissolved group has no members: say so rather than "not a member" (one more read, on refusal only).
    const group = await storage(ctx, "group lookup", () => groups.get(request.groupId));
    if (group?.dissolved) throw new AppError(ErrorCode.GROUP_DISSOLVED, `group ${request.groupId} was dissolved`);
    throw new AppError(ErrorCode.NOT_GROUP_MEMBER, `not a member of group ${request.groupId}`);
  }
  const prepared = await copyOf(ctx, original, request.clientMsgId, groupConvId(request.groupId));
  return sendToGroup({ ...ctx, groups }, session, request.groupId, prepared, { reqId, answer: "forwardResp" });
}

/**
 * The copy: the same kind, text, file and custom content; its origin is the first one (a
 * forward of a forward names the message first written). The target gets access to the file.
 */
async function copyOf(
  ctx: HandlerContext,
  original: StoredMessage,
  clientMsgId: string,
  toConvId: string,
): Promise<PreparedMessage> {
  const forwarded: StoredForwardOrigin = original.forwarded ?? {
    convId: original.convId,
    msgId: original.msgId,
    sender: original.sender,
    sentAtMs: original.sentAtMs,
  };
  const file = original.file;
  const files = ctx.files;
  if (file && files) {
    const shared = await storage(ctx, "file share", () => files.share(file.id, toConvId));
    if (!shared) throw new AppError(ErrorCode.NOT_FOUND, `file ${file.id} is gone`);
  }
  return {
    clientMsgId,
    kind: original.kind,
    text: original.text,
    file,
    extras: { forwarded, custom: original.custom },
  };
}

import { AppError, ErrorCode } from "../../errors.js";
import {
  type ChatMessage,
  type FileRef,
  MessageKind,
  type SendMessageRequest,
  type SendMessageResponse,
} from "../../gen/shardchat/v1/client.js";
import { COLUMN_CHARS, convIdForPair, isUid, requireChars, requireUid, type Uid } from "../../ids/identifiers.js";
import { fitsChars } from "../../text/chars.js";
import type { LaneTurn } from "../inbox.js";
import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";

/** What a 1:1 and a group message share: the client's id, the kind, the text or file. */
export type MessageContent = Pick<SendMessageRequest, "clientMsgId" | "kind" | "text" | "file">;

/** Checks a message's content as a client sent it (the file is checked against storage later). */
export function validateContent(request: MessageContent, maxTextChars: number): void {
  requireChars(request.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
  if (request.kind === MessageKind.FILE) {
    // Only the reference travels: the bytes went to gate, which checks who may download them.
    const file = request.file;
    if (!file || !isUid(file.id) || file.id === "0") throw invalid("a file message needs file.id from gate");
    if (file.name === "" || !fitsChars(file.name, COLUMN_CHARS.fileName)) throw invalid("file.name is required");
  } else if (request.kind !== MessageKind.TEXT) {
    throw invalid("kind must be TEXT or FILE");
  } else if (request.text.length === 0) throw invalid("text is required");
  // Counted in code points, as a user would count characters (not UTF-16 units).
  if (!fitsChars(request.text, maxTextChars)) {
    throw new AppError(ErrorCode.TEXT_TOO_LONG, `text of ${[...request.text].length} chars > ${maxTextChars}`);
  }
}

/** The one check of a 1:1 send: its recipient, checked once here and trusted from here on, and its content. */
function recipientOf(sender: Uid, request: SendMessageRequest, maxTextChars: number): Uid {
  const to = requireUid(request.toUid, "toUid");
  if (to === sender) throw invalid("cannot send to yourself");
  validateContent(request, maxTextChars);
  return to;
}

/**
 * Stores the message, acks the sender with its id and seq only once it is committed, then
 * delivers it without making the ack wait. A resend of the same clientMsgId is answered with
 * the stored message and not delivered again.
 */
export async function send(
  ctx: HandlerContext,
  session: LoggedInSession,
  request: RequestOf<"sendReq">,
  reqId: number,
  turn: LaneTurn,
): Reply {
  const sender = session.uid;
  const to = recipientOf(sender, request, ctx.config.CHAT_MAX_TEXT_CHARS);
  const existing = await storage(ctx, "user lookup", () => ctx.knownUsers.existing([to]));
  if (!existing.has(to)) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${to}`);
  if (ctx.config.CHAT_REQUIRE_FRIENDSHIP) await requireFriendship(ctx, sender, to);
  const convId = convIdForPair(sender, to);
  const file = request.kind === MessageKind.FILE ? await storedFile(ctx, sender, convId, request.file) : undefined;
  const msgId = ctx.ids.next();
  const appended = storage(ctx, "message append", () =>
    ctx.messages.append({
      convId,
      members: [sender, to],
      msgId,
      sender,
      recipient: to,
      clientMsgId: request.clientMsgId,
      kind: request.kind,
      text: request.text,
      sentAtMs: Date.now(),
      file,
    }),
  );
  // append() took this message's place in the conversation: the sender's next message to it
  // may follow now, without waiting for this one's commit.
  turn.release();
  const { message, duplicate } = await appended;
  ctx.delivered.sent(sender, message.convId, message.seq);
  session.send({
    reqId,
    body: {
      $case: "sendResp",
      value: storedReply(message, duplicate),
    },
  });
  // The sender's other devices show what it sent from this one (the fan-out pushes them too).
  if (!duplicate) ctx.background(ctx.fanout.message(message, [to], session));
  return undefined;
}

/** What the sender is told once its message is stored (1:1 and group sends alike). */
export function storedReply(message: ChatMessage, duplicate: boolean): SendMessageResponse {
  const { clientMsgId, msgId, seq, convId, sentAtMs } = message;
  return { clientMsgId, msgId, seq, convId, sentAtMs, duplicate };
}

/** CHAT_REQUIRE_FRIENDSHIP: one read of the sender's friendship row, on the sender's shard. */
async function requireFriendship(ctx: HandlerContext, sender: Uid, to: Uid): Promise<void> {
  const friends = ctx.friends;
  if (!friends) throw new AppError(ErrorCode.UNAVAILABLE, "friendship cannot be checked on this chat node");
  const ok = await storage(ctx, "friendship check", () => friends.areFriends(sender, to));
  if (!ok) throw new AppError(ErrorCode.NOT_FRIENDS, `${to} is not a friend`);
}

/**
 * The file a file message names, as gate stored it (and marked sent): it must exist and have been uploaded by
 * the sender for this conversation (else NOT_FOUND / NOT_PARTICIPANT), and its name, size and
 * type come from storage, not from the client.
 */
export async function storedFile(
  ctx: HandlerContext,
  sender: string,
  convId: string,
  ref: FileRef | undefined,
): Promise<FileRef | undefined> {
  const files = ctx.files;
  if (!files || !ref) return ref;
  const meta = await storage(ctx, "file lookup", () => files.byId(ref.id));
  if (!meta) throw new AppError(ErrorCode.NOT_FOUND, `no file ${ref.id}`);
  if (meta.owner !== sender || meta.convId !== convId) {
    throw new AppError(ErrorCode.NOT_PARTICIPANT, "the file was uploaded by someone else or for another conversation");
  }
  // Named by a message from now on, so the sweep of unsent uploads keeps it; a file swept
  // since the lookup is gone, and no message may point at it.
  if (!(await storage(ctx, "file mark", () => files.markSent(meta.id, Date.now())))) {
    throw new AppError(ErrorCode.NOT_FOUND, `no file ${ref.id}`);
  }
  return { id: meta.id, name: meta.name, size: String(meta.size), contentType: meta.contentType };
}

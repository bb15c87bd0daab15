import {
  type ChatMessage,
  type CustomContent,
  type FileRef,
  MessageKind,
  type SendMessageRequest,
  type SendMessageResponse,
} from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../errors.js";
import {
  COLUMN_CHARS,
  convIdForPair,
  isGroupConvId,
  isUid,
  requireChars,
  requireUid,
  type Uid,
} from "../../ids/identifiers.js";
import { replyOf } from "../../storage/message-model.js";
import { isEventKind, type MessageExtras, type StoredMessage, type StoredReply } from "../../storage/ports.js";
import { fitsChars } from "../../text/chars.js";
import type { LaneTurn } from "../inbox.js";
import { checkBeforeSend } from "./before-send.js";
import type { ChatConfig, HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";

/** What a 1:1 and a group message share: the client's id, the kind, the text, file or custom content, a quote. */
export type MessageContent = Pick<SendMessageRequest, "clientMsgId" | "kind" | "text" | "file" | "custom" | "replyTo">;

/** The settings a message's content is checked against. */
export type ContentLimits = Pick<
  ChatConfig,
  "CHAT_MAX_TEXT_CHARS" | "MESSAGE_CUSTOM_MAX_BYTES" | "MESSAGE_CUSTOM_TYPE_MAX_CHARS"
>;

/** Whether messages of this kind name an uploaded file: a file, or a voice message's recording. */
export function namesFile(kind: MessageKind): boolean {
  return kind === MessageKind.FILE || kind === MessageKind.AUDIO;
}

/** Checks a message's content as a client sent it (the file and the quote are checked against storage later). */
export function validateContent(request: MessageContent, limits: ContentLimits): void {
  requireChars(request.clientMsgId, COLUMN_CHARS.clientMsgId, "clientMsgId");
  if (namesFile(request.kind)) {
    // Only the reference travels: the bytes went to gate, which checks who may download them.
    const file = request.file;
    if (!file || !isUid(file.id) || file.id === "0") throw invalid("a file or voice message needs file.id from gate");
    if (file.name === "" || !fitsChars(file.name, COLUMN_CHARS.fileName)) throw invalid("file.name is required");
  } else if (request.kind === MessageKind.CUSTOM) {
    validateCustom(request.custom, limits);
  } else if (request.kind !== MessageKind.TEXT) {
    throw invalid("kind must be TEXT, FILE, AUDIO or CUSTOM");
  } else if (request.text.length === 0) throw invalid("text is required");
  // Counted in code points, as a user would count characters (not UTF-16 units).
  if (!fitsChars(request.text, limits.CHAT_MAX_TEXT_CHARS)) {
    throw new AppError(
      ErrorCode.TEXT_TOO_LONG,
      `text of ${[...request.text].length} chars > ${limits.CHAT_MAX_TEXT_CHARS}`,
    );
  }
  if (request.replyTo && !(request.replyTo.seq >= 1)) throw invalid("replyTo.seq must be >= 1");
}

/** A custom message: a type name and a JSON document under MESSAGE_CUSTOM_MAX_BYTES. */
function validateCustom(custom: CustomContent | undefined, limits: ContentLimits): void {
  if (!custom) throw invalid("a custom message needs custom.type and custom.payloadJson");
  requireChars(custom.type, limits.MESSAGE_CUSTOM_TYPE_MAX_CHARS, "custom.type");
  const bytes = Buffer.byteLength(custom.payloadJson, "utf8");
  if (bytes > limits.MESSAGE_CUSTOM_MAX_BYTES) {
    throw new AppError(
      ErrorCode.PAYLOAD_TOO_LARGE,
      `custom payload of ${bytes} bytes > ${limits.MESSAGE_CUSTOM_MAX_BYTES}`,
    );
  }
  try {
    JSON.parse(custom.payloadJson);
  } catch {
    throw invalid("custom.payloadJson is not JSON");
  }
}

/**
 * The quoted message of a reply, as the sender sees it in this conversation: it must exist
 * (NOT_FOUND), be content rather than an event, and not be recalled (MESSAGE_RECALLED).
 */
export async function quotedMessage(
  ctx: HandlerContext,
  sender: Uid,
  convId: string,
  seq: number,
): Promise<StoredReply> {
  const quoted = await storage(ctx, "message read", () => ctx.messages.message(sender, convId, seq)).catch(
    asMemberError(convId),
  );
  if (!quoted || quoted.deletedForMe || isEventKind(quoted.kind))
    throw new AppError(ErrorCode.NOT_FOUND, `no message ${seq}`);
  if (quoted.recalled) throw new AppError(ErrorCode.MESSAGE_RECALLED, `message ${seq} was recalled`);
  return replyOf(quoted);
}

/** A message ready to store: its checked content, its file as storage has it, and its extras. */
export interface PreparedMessage {
  clientMsgId: string;
  kind: MessageKind;
  text: string;
  file?: FileRef | undefined;
  extras?: MessageExtras | undefined;
}

/** The extras of a message a client sent: custom content and the quote (mentions are the group's). */
async function contentExtras(
  ctx: HandlerContext,
  sender: Uid,
  convId: string,
  request: MessageContent,
): Promise<MessageExtras | undefined> {
  const reply = request.replyTo ? await quotedMessage(ctx, sender, convId, request.replyTo.seq) : undefined;
  const custom = request.kind === MessageKind.CUSTOM ? request.custom : undefined;
  return reply || custom ? { reply, custom } : undefined;
}

/** What the client sent, checked against storage: the file the sender uploaded, the quote. */
export async function preparedMessage(
  ctx: HandlerContext,
  sender: Uid,
  convId: string,
  request: MessageContent,
): Promise<PreparedMessage> {
  const file = namesFile(request.kind) ? await storedFile(ctx, sender, convId, request.file) : undefined;
  // A voice message plays inline: only a recording gate stored as audio is one.
  if (request.kind === MessageKind.AUDIO && !file?.contentType.startsWith("audio/")) {
    throw invalid("a voice message names an audio/* file");
  }
  const extras = await contentExtras(ctx, sender, convId, request);
  return { clientMsgId: request.clientMsgId, kind: request.kind, text: request.text, file, extras };
}

/** The one check of a 1:1 send: its recipient, checked once here and trusted from here on, and its content. */
function recipientOf(sender: Uid, request: SendMessageRequest, limits: ContentLimits): Uid {
  const to = requireUid(request.toUid, "toUid");
  if (to === sender) throw invalid("cannot send to yourself");
  validateContent(request, limits);
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
  const to = recipientOf(sender, request, ctx.config);
  await requireRecipient(ctx, sender, to);
  const convId = convIdForPair(sender, to);
  const prepared = await preparedMessage(ctx, sender, convId, request);
  return sendDirect(ctx, session, to, prepared, { reqId, turn, answer: "sendResp" });
}

/**
 * A 1:1 message may go to `to`: it exists, and is a friend when CHAT_REQUIRE_FRIENDSHIP says so.
 * With `blocks`, neither blocked the other (BLOCKED; one read beside the user lookup): for what
 * is not stored, such as typing. A send does not ask, since its append reads the block mark.
 */
export async function requireRecipient(
  ctx: HandlerContext,
  sender: Uid,
  to: Uid,
  { blocks = false }: { blocks?: boolean } = {},
): Promise<void> {
  const blockStore = blocks ? ctx.blocks : undefined;
  const [existing, blocked] = await storage(ctx, "user lookup", () =>
    Promise.all([ctx.knownUsers.existing([to]), blockStore?.blockedAmong(sender, [to])]),
  );
  if (!existing.has(to)) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${to}`);
  if (blocked?.has(to)) throw new AppError(ErrorCode.BLOCKED);
  if (ctx.config.CHAT_REQUIRE_FRIENDSHIP) await requireFriendship(ctx, sender, to);
}

/** How a stored message is answered: the request's id, its lane turn, and the response's case. */
export interface Answer {
  reqId: number;
  turn?: LaneTurn;
  answer: "sendResp" | "groupSendResp" | "forwardResp";
}

/** Stores a checked 1:1 message, answers once committed, then delivers it (send and forward). */
export async function sendDirect(
  ctx: HandlerContext,
  session: LoggedInSession,
  to: Uid,
  prepared: PreparedMessage,
  { reqId, turn, answer }: Answer,
): Reply {
  const sender = session.uid;
  const convId = convIdForPair(sender, to);
  const msgId = ctx.ids.next();
  // The before-send webhook (issue 18), when configured: may refuse or rewrite the message.
  await checkBeforeSend(ctx, convId, sender, to, prepared, msgId);
  const appended = storage(ctx, "message append", () =>
    ctx.messages.append({
      convId,
      members: [sender, to],
      msgId,
      sender,
      recipient: to,
      clientMsgId: prepared.clientMsgId,
      kind: prepared.kind,
      text: prepared.text,
      sentAtMs: Date.now(),
      file: prepared.file,
      extras: prepared.extras,
    }),
  );
  // append() took this message's place in the conversation: the sender's next message to it
  // may follow now, without waiting for this one's commit.
  turn?.release();
  const { message, duplicate } = await appended;
  ctx.delivered.sent(sender, message.convId, message.seq);
  session.send({ reqId, body: { $case: answer, value: storedReply(message, duplicate) } });
  // The sender's other devices show what it sent from this one (the fan-out pushes them too).
  if (!duplicate) ctx.background(ctx.fanout.message(withQuote(message, prepared), [to], session));
  return undefined;
}

/** The stored message as pushed: with the quote's snippet, which storage fills only on reads. */
export function withQuote(message: StoredMessage, prepared: PreparedMessage): StoredMessage {
  const reply = prepared.extras?.reply;
  return reply ? { ...message, reply } : message;
}

/** A store's NOT_PARTICIPANT about a group's conversation is the group's own code (a client tells a kick apart). */
export function asMemberError(convId: string): (err: unknown) => never {
  return (err) => {
    if (isGroupConvId(convId) && err instanceof AppError && err.code === ErrorCode.NOT_PARTICIPANT) {
      throw new AppError(ErrorCode.NOT_GROUP_MEMBER, "not a member of this group");
    }
    throw err;
  };
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
  return {
    id: meta.id,
    name: meta.name,
    size: String(meta.size),
    contentType: meta.contentType,
    ...(meta.media ? { media: meta.media } : {}),
  };
}

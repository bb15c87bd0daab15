import { AppError, ErrorCode } from "../../errors.js";
import { MessageKind, type SendMessageRequest } from "../../gen/shardchat/v1/client.js";
import { convIdForPair } from "../../storage/conversation-id.js";
import { deliver } from "../delivery.js";
import { type Handler, invalid, isUid, storage } from "./context.js";

const MAX_CLIENT_MSG_ID_CHARS = 64;

function validate(sender: string, request: SendMessageRequest, maxTextChars: number): void {
  if (!isUid(request.toUid)) throw invalid("toUid must be a decimal user id");
  if (request.toUid === sender) throw invalid("cannot send to yourself");
  const clientMsgIdLength = [...request.clientMsgId].length;
  if (clientMsgIdLength < 1 || clientMsgIdLength > MAX_CLIENT_MSG_ID_CHARS) {
    throw invalid(`clientMsgId must be 1..${MAX_CLIENT_MSG_ID_CHARS} characters`);
  }
  if (request.kind !== MessageKind.TEXT) throw invalid("kind must be TEXT");
  if (request.text.length === 0) throw invalid("text is required");
  // Counted in code points, as a user would count characters (not UTF-16 units).
  const chars = [...request.text].length;
  if (chars > maxTextChars) throw new AppError(ErrorCode.TEXT_TOO_LONG, `text of ${chars} chars > ${maxTextChars}`);
}

/**
 * Stores the message, acks the sender with its id and seq only once it is committed, then
 * delivers it without making the ack wait. A resend of the same clientMsgId is answered with
 * the stored message and not delivered again.
 */
export const send: Handler<"sendReq"> = async (ctx, session, request, reqId) => {
  const sender = session.uid as string;
  validate(sender, request, ctx.config.CHAT_MAX_TEXT_CHARS);
  const existing = await storage(ctx, "user lookup", () => ctx.users.existing([request.toUid]));
  if (!existing.has(request.toUid)) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${request.toUid}`);
  const msgId = ctx.ids.next();
  const { message, duplicate } = await storage(ctx, "message append", () =>
    ctx.messages.append({
      convId: convIdForPair(sender, request.toUid),
      members: [sender, request.toUid],
      msgId,
      sender,
      recipient: request.toUid,
      clientMsgId: request.clientMsgId,
      kind: request.kind,
      text: request.text,
      sentAtMs: Date.now(),
    }),
  );
  session.send({
    reqId,
    body: {
      $case: "sendResp",
      value: {
        clientMsgId: message.clientMsgId,
        msgId: message.msgId,
        seq: message.seq,
        convId: message.convId,
        sentAtMs: message.sentAtMs,
        duplicate,
      },
    },
  });
  if (!duplicate) ctx.background(deliver(ctx, message, [request.toUid]));
  return undefined;
};

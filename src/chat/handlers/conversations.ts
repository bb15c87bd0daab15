import { directConvMembers } from "../../ids/identifiers.js";
import type { Uid } from "../../storage/ports.js";
import type { ConversationsContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageSize, storage } from "./context.js";

/** The other member of a 1:1 conversation ("p:<low>:<high>"), or undefined for other kinds. */
export function peerOf(convId: string, uid: Uid): Uid | undefined {
  const members = directConvMembers(convId);
  if (!members) return undefined;
  const [low, high] = members;
  if (low === uid) return high;
  if (high === uid) return low;
  return undefined;
}

/** The user's conversations, the most recently active first, with the last message and unread count. */
export async function conversationList(
  ctx: ConversationsContext,
  session: LoggedInSession,
  request: RequestOf<"conversationListReq">,
): Reply {
  const me = session.uid;
  const limit = pageSize(request.limit, ctx.config.CHAT_CONVERSATION_LIST_MAX);
  const list = await storage(ctx, "conversation list", () => ctx.conversations.list(me, limit));
  return {
    $case: "conversationListResp",
    value: {
      conversations: list.map((c) => ({
        convId: c.convId,
        peerUid: peerOf(c.convId, me) ?? "0",
        lastMessage: c.lastMessage,
        lastSeq: c.lastSeq,
        readSeq: c.readSeq,
        unread: Math.max(0, c.lastSeq - c.readSeq),
        peerReadSeq: c.peerReadSeq,
        mentioned: c.mentioned,
      })),
    },
  };
}

/**
 * Moves the read cursor; when it moved, a ReadReceiptPush goes to the peer of a 1:1
 * conversation and to the reader's other devices (not to the session that asked), wherever
 * they are.
 */
export async function markRead(
  ctx: ConversationsContext,
  session: LoggedInSession,
  request: RequestOf<"markReadReq">,
): Reply {
  const me = session.uid;
  if (!request.convId) throw invalid("convId is required");
  if (request.seq < 1) throw invalid("seq must be >= 1");
  const { readSeq, advanced } = await storage(ctx, "mark read", () =>
    ctx.conversations.markRead(me, request.convId, request.seq),
  );
  if (advanced) {
    const peer = peerOf(request.convId, me);
    ctx.background(
      ctx.fanout.notice(
        peer ? [me, peer] : [me],
        { reqId: 0, body: { $case: "readReceiptPush", value: { convId: request.convId, reader: me, seq: readSeq } } },
        session.id,
      ),
    );
  }
  return { $case: "markReadResp", value: { readSeq } };
}

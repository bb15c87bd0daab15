import type { ConversationSettingsPush } from "../../../packages/protocol/src/wire.js";
import { COLUMN_CHARS, directConvMembers, requireChars } from "../../ids/identifiers.js";
import type { ConversationSettingsRecord, Uid } from "../../storage/ports.js";
import type { ConversationsContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageSize, storage } from "./context.js";
import { asMemberError } from "./send.js";

/** The other member of a 1:1 conversation ("p:<low>:<high>"), or undefined for other kinds. */
export function peerOf(convId: string, uid: Uid): Uid | undefined {
  const members = directConvMembers(convId);
  if (!members) return undefined;
  const [low, high] = members;
  if (low === uid) return high;
  if (high === uid) return low;
  return undefined;
}

/**
 * The user's conversations, pinned first, then the most recently active, with the last message
 * (unless cleared), unread count, settings and first_seq (when the history was cleared); a
 * hidden one only once a message came after it was hidden.
 */
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
        // What was cleared or purged is not unread.
        unread: Math.max(0, c.lastSeq - Math.max(c.readSeq, c.clearedSeq)),
        peerReadSeq: c.peerReadSeq,
        mentioned: c.mentioned,
        settings: c.settings,
        firstSeq: c.clearedSeq > 0 ? c.clearedSeq + 1 : undefined,
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

/**
 * Changes the caller's settings of a conversation it is in (fields left out stay); its other
 * devices are pushed the settings. Mute is stored and listed only (push notifications are not
 * sent yet). NOT_PARTICIPANT, NOT_GROUP_MEMBER for a group's conversation.
 */
export async function conversationSettings(
  ctx: ConversationsContext,
  session: LoggedInSession,
  request: RequestOf<"conversationSettingsReq">,
): Reply {
  const me = session.uid;
  const convId = requireChars(request.convId, COLUMN_CHARS.convId, "convId");
  const patch: Partial<ConversationSettingsRecord> = {};
  if (request.pinned !== undefined) patch.pinned = request.pinned;
  if (request.muted !== undefined) patch.muted = request.muted;
  if (request.hidden !== undefined) patch.hidden = request.hidden;
  const settings = await storage(ctx, "conversation settings", () =>
    ctx.conversations.setSettings(me, convId, patch),
  ).catch(asMemberError(convId));
  // An empty patch only reads the settings: nothing changed for the other devices.
  if (Object.keys(patch).length > 0) pushToOwnDevices(ctx, session, { convId, settings, clearedSeq: 0 });
  return { $case: "conversationSettingsResp", value: { settings } };
}

/**
 * Clears the conversation's history for the caller alone, up to seq (0: the newest): history,
 * sync, unread and mentions start after it on all of its devices, which are pushed the cleared
 * seq; the other members keep theirs. NOT_PARTICIPANT, NOT_GROUP_MEMBER.
 */
export async function clearHistory(
  ctx: ConversationsContext,
  session: LoggedInSession,
  request: RequestOf<"clearHistoryReq">,
): Reply {
  const me = session.uid;
  const convId = requireChars(request.convId, COLUMN_CHARS.convId, "convId");
  if (!Number.isSafeInteger(request.seq) || request.seq < 0) throw invalid("seq must be >= 0");
  const clearedSeq = await storage(ctx, "clear history", () =>
    ctx.conversations.clearHistory(me, convId, request.seq),
  ).catch(asMemberError(convId));
  if (clearedSeq > 0) pushToOwnDevices(ctx, session, { convId, settings: undefined, clearedSeq });
  return { $case: "clearHistoryResp", value: { clearedSeq } };
}

/**
 * The caller's other devices (not the session that asked), wherever they are: settings when
 * they changed, cleared_seq when the history was cleared (0: unchanged).
 */
function pushToOwnDevices(ctx: ConversationsContext, session: LoggedInSession, push: ConversationSettingsPush): void {
  ctx.background(
    ctx.fanout.notice(
      [session.uid],
      { reqId: 0, body: { $case: "conversationSettingsPush", value: push } },
      session.id,
    ),
  );
}

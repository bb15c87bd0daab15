import type { Envelope } from "../../../packages/protocol/src/wire.js";
import { AppError, clientMessage, codeOf, ErrorCode, errorName, httpStatusOf } from "../../errors.js";
import { sampled } from "../../log/logger.js";
import type { LaneTurn } from "../inbox.js";
import { errorEnvelope, failSession, type Session } from "../session.js";
import { ack } from "./ack.js";
import { block, blockList, unblock } from "./blocks.js";
import {
  type BlocksContext,
  type ConversationsContext,
  FatalSessionError,
  type FriendsContext,
  type GroupsContext,
  type Handler,
  type HandlerContext,
  type LoggedInSession,
  type ReportsContext,
  type RequestCase,
} from "./context.js";
import { clearHistory, conversationList, conversationSettings, markRead } from "./conversations.js";
import { forward } from "./forward.js";
import { friendApplications, friendApply, friendList, friendRemove, friendReply, searchUsers } from "./friends.js";
import {
  groupAnnounce,
  groupDissolve,
  groupJoin,
  groupJoinReply,
  groupJoinRequests,
  groupMute,
  groupMuteAll,
  groupSetJoinApproval,
} from "./group-moderation.js";
import {
  groupCreate,
  groupInvitationReply,
  groupInvitations,
  groupInvite,
  groupKick,
  groupLeave,
  groupList,
  groupMembers,
  groupRename,
  groupSend,
  groupSetRole,
} from "./groups.js";
import { heartbeat } from "./heartbeat.js";
import { history } from "./history.js";
import { login } from "./login.js";
import { deleteForMe, edit, react, recall } from "./message-changes.js";
import { report } from "./reports.js";
import { groupSetRetention } from "./retention.js";
import { send } from "./send.js";
import { sync } from "./sync.js";
import { typing } from "./typing.js";

/** Which requests a node answers, and how; a request it does not list answers UNKNOWN_MESSAGE_TYPE. */
export type HandlerTable = { [C in RequestCase]?: Handler<C> };

type GroupCase = Extract<RequestCase, `group${string}`>;
type FriendCase = "friendApplyReq" | "friendReplyReq" | "friendListReq" | "friendRemoveReq" | "friendApplicationsReq";
type ConversationCase = "conversationListReq" | "markReadReq" | "conversationSettingsReq" | "clearHistoryReq";
type BlockCase = "blockReq" | "unblockReq" | "blockListReq";

/** What every node serves: login, messages, sync, history, and user search. */
const CORE: HandlerTable = {
  loginReq: login,
  heartbeatReq: heartbeat,
  sendReq: send,
  syncReq: sync,
  ackReq: ack,
  historyReq: history,
  searchUsersReq: searchUsers,
  // The message model (issue 16): on any conversation a node stores.
  recallReq: recall,
  editReq: edit,
  reactReq: react,
  deleteForMeReq: deleteForMe,
  typingReq: typing,
  forwardReq: forward,
};

const GROUP_HANDLERS: { [C in GroupCase]: Handler<C, GroupsContext> } = {
  groupCreateReq: groupCreate,
  groupInviteReq: groupInvite,
  groupLeaveReq: groupLeave,
  groupKickReq: groupKick,
  groupRenameReq: groupRename,
  groupSetRoleReq: groupSetRole,
  groupMembersReq: groupMembers,
  groupSendReq: groupSend,
  groupListReq: groupList,
  groupInvitationsReq: groupInvitations,
  groupInvitationReplyReq: groupInvitationReply,
  // Moderation (issue 17).
  groupMuteReq: groupMute,
  groupMuteAllReq: groupMuteAll,
  groupAnnounceReq: groupAnnounce,
  groupDissolveReq: groupDissolve,
  groupSetJoinApprovalReq: groupSetJoinApproval,
  groupJoinReq: groupJoin,
  groupJoinRequestsReq: groupJoinRequests,
  groupJoinReplyReq: groupJoinReply,
  // Retention (issue 17).
  groupSetRetentionReq: groupSetRetention,
};

const FRIEND_HANDLERS: { [C in FriendCase]: Handler<C, FriendsContext> } = {
  friendApplyReq: friendApply,
  friendReplyReq: friendReply,
  friendListReq: friendList,
  friendRemoveReq: friendRemove,
  friendApplicationsReq: friendApplications,
};

const CONVERSATION_HANDLERS: { [C in ConversationCase]: Handler<C, ConversationsContext> } = {
  conversationListReq: conversationList,
  markReadReq: markRead,
  conversationSettingsReq: conversationSettings,
  clearHistoryReq: clearHistory,
};

/** Blocks (issue 17): served with a block store. */
const BLOCK_HANDLERS: { [C in BlockCase]: Handler<C, BlocksContext> } = {
  blockReq: block,
  unblockReq: unblock,
  blockListReq: blockList,
};

/** Reports (issue 17): served with a report store. */
const REPORT_HANDLERS: { reportReq: Handler<"reportReq", ReportsContext> } = {
  reportReq: report,
};

/** handlers with `ctx` (which has their store) given to them in place of the node's context. */
function withContext<X extends HandlerContext>(ctx: X, handlers: { [C in RequestCase]?: Handler<C, X> }): HandlerTable {
  const table: Record<string, Handler<RequestCase>> = {};
  for (const [name, handler] of Object.entries(handlers) as [RequestCase, Handler<RequestCase, X>][]) {
    table[name] = (_nodeCtx, session, request, reqId, turn) => handler(ctx, session, request, reqId, turn);
  }
  return table as HandlerTable;
}

/**
 * The handlers a node serves: the core ones always; groups, friends, conversation lists, blocks
 * and reports only when the node has their store, each given a context in which that store is
 * present.
 */
export function servedHandlers(ctx: HandlerContext): HandlerTable {
  const { groups, friends, conversations, blocks, reports } = ctx;
  const table: HandlerTable = {
    ...CORE,
    ...(groups ? withContext({ ...ctx, groups }, GROUP_HANDLERS) : {}),
    ...(friends ? withContext({ ...ctx, friends }, FRIEND_HANDLERS) : {}),
    ...(conversations ? withContext({ ...ctx, conversations }, CONVERSATION_HANDLERS) : {}),
    ...(blocks ? withContext({ ...ctx, blocks }, BLOCK_HANDLERS) : {}),
    ...(reports ? withContext({ ...ctx, reports }, REPORT_HANDLERS) : {}),
  };
  // Decided once per node: with tracing off the table is the plain one, and a send pays nothing.
  return ctx.tracing.enabled ? withSendSpans(ctx, table) : table;
}

/** The span of each request that posts a message (the fan-out and the recipients' pushes are its children). */
const SEND_SPANS = { sendReq: "chat.send", groupSendReq: "chat.group_send", forwardReq: "chat.forward" } as const;

/**
 * The table with each message send run in a span of its own on this node: the child of a traced
 * caller's (the Server API's Act), else a new trace. Active while the send runs, so the fan-out
 * it starts (Fanout.message) hangs under it and carries it to the recipients' nodes.
 */
function withSendSpans(ctx: HandlerContext, table: HandlerTable): HandlerTable {
  const traced: HandlerTable = { ...table };
  for (const [request, name] of Object.entries(SEND_SPANS) as [keyof typeof SEND_SPANS, string][]) {
    const handler = table[request] as Handler<RequestCase> | undefined;
    if (!handler) continue;
    const wrapped: Handler<RequestCase> = async (nodeCtx, session, body, reqId, turn) => {
      const span = ctx.tracing.startSpan(name, {
        kind: "server",
        attributes: {
          "shardchat.node_id": ctx.nodeId,
          "shardchat.uid": session.uid ?? "",
          "shardchat.request": request,
        },
      });
      try {
        const reply = await ctx.tracing.withSpan(span, () => handler(nodeCtx, session, body, reqId, turn));
        span.end();
        return reply;
      } catch (err) {
        span.end(err);
        throw err;
      }
    };
    (traced as Record<string, Handler<RequestCase>>)[request] = wrapped;
  }
  return traced;
}

/** Requests that post a message: the ones the messages-per-second limits count. */
const MESSAGE_SENDS: ReadonlySet<string> = new Set(["sendReq", "groupSendReq", "forwardReq"]);
/** Outside the request budget: the login (once), and acks, which follow the messages received. */
const UNBUDGETED: ReadonlySet<string> = new Set(["loginReq", "ackReq"]);

function isRequest(
  handlers: HandlerTable,
  body: Envelope["body"],
): body is Extract<NonNullable<Envelope["body"]>, { $case: RequestCase }> {
  return body !== undefined && Object.hasOwn(handlers, body.$case);
}

/**
 * Runs the handler of one envelope and answers with its reqId. Only a refused login or a
 * request before login ends the session; any other failure is answered and the session goes on.
 */
export async function dispatch(
  ctx: HandlerContext,
  handlers: HandlerTable,
  session: Session,
  envelope: Envelope,
  turn: LaneTurn = { release() {} },
): Promise<void> {
  const { reqId, body } = envelope;
  if (!isRequest(handlers, body)) {
    const what = body ? `${body.$case} is not a request this node serves` : "envelope has no body";
    session.send(errorEnvelope(reqId, ErrorCode.UNKNOWN_MESSAGE_TYPE, what));
    return;
  }
  if (body.$case !== "loginReq" && session.uid === undefined) {
    failSession(session, ErrorCode.NOT_LOGGED_IN, "the first frame must be a login", reqId);
    return;
  }
  // Every request from here on is answered: a reply, an error, or (a fatal one) the session's end.
  ctx.metrics.requests.inc({ protocol: "chat" });
  try {
    // The Server API is limited per API key at gate (ADMIN_REQUESTS_PER_MINUTE), not per user.
    if (!session.privileged) {
      if (MESSAGE_SENDS.has(body.$case)) await ctx.limits.message(session);
      else if (!UNBUDGETED.has(body.$case)) ctx.limits.request(session, body.$case);
    }
    const handler = handlers[body.$case] as Handler<typeof body.$case>;
    // Logged in unless this is the login itself (checked above).
    const reply = await handler(ctx, session as LoggedInSession, body.value as never, reqId, turn);
    if (reply) session.send({ reqId, body: reply });
  } catch (err) {
    const code = codeOf(err);
    const message = clientMessage(err);
    if (httpStatusOf(code) >= 500) ctx.metrics.requestFailures.inc({ protocol: "chat", code: errorName(code) });
    if (!(err instanceof AppError))
      ctx.log.error(sampled({ err, sessionId: session.id, request: body.$case }), "handler failed");
    // What the client is not told (a driver's text, an internal address) is in the log.
    else if (message !== err.message)
      ctx.log.warn(sampled({ err, sessionId: session.id, request: body.$case }), "request failed");
    if (err instanceof FatalSessionError) failSession(session, code, message, reqId, err.redirect);
    else session.send(errorEnvelope(reqId, code, message));
  }
}

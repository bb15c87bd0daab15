import { AppError, clientMessage, codeOf, ErrorCode } from "../../errors.js";
import type { Envelope } from "../../gen/shardchat/v1/client.js";
import type { LaneTurn } from "../inbox.js";
import { errorEnvelope, failSession, type Session } from "../session.js";
import { ack } from "./ack.js";
import {
  FatalSessionError,
  type Handler,
  type HandlerContext,
  type LoggedInSession,
  type RequestCase,
} from "./context.js";
import { conversationList, markRead } from "./conversations.js";
import { friendApplications, friendApply, friendList, friendRemove, friendReply, searchUsers } from "./friends.js";
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
import { send } from "./send.js";
import { sync } from "./sync.js";

const handlers: { [C in RequestCase]: Handler<C> } = {
  loginReq: login,
  heartbeatReq: heartbeat,
  sendReq: send,
  syncReq: sync,
  ackReq: ack,
  historyReq: history,
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
  searchUsersReq: searchUsers,
  friendApplyReq: friendApply,
  friendReplyReq: friendReply,
  friendListReq: friendList,
  friendRemoveReq: friendRemove,
  friendApplicationsReq: friendApplications,
  conversationListReq: conversationList,
  markReadReq: markRead,
};

/** Requests that post a message: the ones the messages-per-second limits count. */
const MESSAGE_SENDS: ReadonlySet<string> = new Set(["sendReq", "groupSendReq"]);
/** Outside the request budget: the login (once), and acks, which follow the messages received. */
const UNBUDGETED: ReadonlySet<string> = new Set(["loginReq", "ackReq"]);

function isRequest(body: Envelope["body"]): body is Extract<NonNullable<Envelope["body"]>, { $case: RequestCase }> {
  return body !== undefined && Object.hasOwn(handlers, body.$case);
}

/**
 * Runs the handler of one envelope and answers with its reqId. Only a refused login or a
 * request before login ends the session; any other failure is answered and the session goes on.
 */
export async function dispatch(
  ctx: HandlerContext,
  session: Session,
  envelope: Envelope,
  turn: LaneTurn = { release() {} },
): Promise<void> {
  const { reqId, body } = envelope;
  if (!isRequest(body)) {
    const what = body ? `${body.$case} is not a request` : "envelope has no body";
    session.send(errorEnvelope(reqId, ErrorCode.UNKNOWN_MESSAGE_TYPE, what));
    return;
  }
  if (body.$case !== "loginReq" && session.uid === undefined) {
    failSession(session, ErrorCode.NOT_LOGGED_IN, "the first frame must be a login", reqId);
    return;
  }
  try {
    if (MESSAGE_SENDS.has(body.$case)) await ctx.limits.message(session);
    else if (!UNBUDGETED.has(body.$case)) ctx.limits.request(session, body.$case);
    const handler = handlers[body.$case] as Handler<typeof body.$case>;
    // Logged in unless this is the login itself (checked above).
    const reply = await handler(ctx, session as LoggedInSession, body.value as never, reqId, turn);
    if (reply) session.send({ reqId, body: reply });
  } catch (err) {
    const code = codeOf(err);
    const message = clientMessage(err);
    if (!(err instanceof AppError))
      ctx.log.error({ err, sessionId: session.id, request: body.$case }, "handler failed");
    // What the client is not told (a driver's text, an internal address) is in the log.
    else if (message !== err.message)
      ctx.log.warn({ err, sessionId: session.id, request: body.$case }, "request failed");
    if (err instanceof FatalSessionError) failSession(session, code, message, reqId, err.redirect);
    else session.send(errorEnvelope(reqId, code, message));
  }
}

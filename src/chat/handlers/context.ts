import type { Envelope, NodeAddress } from "../../../packages/protocol/src/wire.js";
import type { Config } from "../../config/settings.js";
import { AppError, ErrorCode } from "../../errors.js";
import type { StatusServiceService } from "../../gen/shardchat/v1/status.js";
import type { Api } from "../../grpc/api.js";
import type { IdGenerator } from "../../ids/ports.js";
import type { Logger } from "../../log/logger.js";
import type { Metrics } from "../../metrics/metrics.js";
import type { SessionRoute, SessionRoutes } from "../../routing/ports.js";
import type {
  BlockStore,
  ConversationStore,
  FileMetaStore,
  FriendStore,
  GroupStore,
  MessageStore,
  ReportStore,
  Uid,
  UserStore,
} from "../../storage/ports.js";
import type { Tracing } from "../../tracing/ports.js";
import type { BeforeSendHook } from "../../webhooks/before-send.js";
import type { WebhookEvents } from "../../webhooks/events.js";
import type { DeliveredCursors } from "../delivered-cursors.js";
import type { Fanout, RingView } from "../fanout.js";
import type { LaneTurn } from "../inbox.js";
import type { KnownUsers } from "../known-users.js";
import type { ChatLimits } from "../limits.js";
import type { PeerDirectory } from "../peers.js";
import type { Session } from "../session.js";
import type { SessionRegistry } from "../sessions.js";
import type { UnackedPushes } from "../unacked.js";

/**
 * Routes that expire unless the node renews them (RedisSessionRoutes with ROUTE_TTL_SECONDS):
 * refresh answers false when another session has taken the uid.
 */
export interface RenewableRoutes extends SessionRoutes {
  refresh?(uid: string, route: SessionRoute): Promise<boolean>;
}

/**
 * The settings the request handlers and a node's session loop read: a slice of Config, so a
 * handler's use of a setting shows here (and the node's other settings stay with server.ts).
 */
export type ChatConfig = Pick<
  Config,
  | "CHAT_CLIENT_HEARTBEAT_MS"
  | "CHAT_CONVERSATION_LIST_MAX"
  | "CHAT_IDLE_TIMEOUT_MS"
  | "CHAT_LOGIN_TIMEOUT_MS"
  | "CHAT_MAX_CONNECTIONS_PER_ADDR"
  | "CHAT_MAX_IN_FLIGHT"
  | "CHAT_MAX_PENDING_LOGINS"
  | "CHAT_MAX_SESSIONS"
  | "CHAT_MAX_TEXT_CHARS"
  | "CHAT_PRESENCE_PUSH"
  | "CHAT_REQUIRE_FRIENDSHIP"
  | "CHAT_ROUTE_RENEW_MIN_MS"
  | "CHAT_SEARCH_MAX_RESULTS"
  | "CHAT_SYNC_BATCH"
  | "FRIENDS_MAX"
  | "FRIEND_APPLICATIONS_MAX"
  | "FRIEND_APPLY_MAX_CHARS"
  | "GROUP_INVITATION_TTL_SECONDS"
  | "GROUP_JOIN_CONSENT"
  | "GROUP_LIST_PAGE"
  | "GROUP_MAX_MEMBERS"
  | "GROUP_MEMBERS_PAGE"
  | "GROUP_NAME_MAX_CHARS"
  | "MESSAGE_CUSTOM_MAX_BYTES"
  | "MESSAGE_CUSTOM_TYPE_MAX_CHARS"
  | "MESSAGE_DELETE_FOR_ME_MAX"
  | "MESSAGE_EDIT_WINDOW_SECONDS"
  | "MESSAGE_MENTIONS_MAX"
  | "MESSAGE_REACTIONS_MAX_DISTINCT"
  | "MESSAGE_REACTION_MAX_CHARS"
  | "MESSAGE_RECALL_WINDOW_SECONDS"
  | "TYPING_MIN_INTERVAL_MS"
  | "TYPING_TTL_MS"
  | "BLOCKS_MAX"
  | "REPORT_REASON_MAX_CHARS"
  | "REPORTS_PER_DAY"
  | "GROUP_MUTE_MAX_SECONDS"
  | "GROUP_ANNOUNCEMENT_MAX_CHARS"
  | "GROUP_DISSOLVE_HISTORY"
  | "GROUP_JOIN_REQUEST_TTL_SECONDS"
  | "GROUP_JOIN_MESSAGE_MAX_CHARS"
>;

/** Everything a request handler may use; the same object for every session of a node. */
export interface HandlerContext {
  config: ChatConfig;
  log: Logger;
  nodeId: string;
  sessions: SessionRegistry;
  messages: MessageStore;
  groups?: GroupStore;
  /** Delivery acks held in memory and written in batches (CHAT_ACK_FLUSH_MS). */
  delivered: DeliveredCursors;
  /** Every push to sessions, here or on other nodes. */
  fanout: Fanout;
  /** Where the ring puts each user (the node this one last saw). */
  ring: RingView;
  /** Pushes not acked yet by their session, re-pushed after CHAT_PUSH_ACK_TIMEOUT_MS. */
  unacked: UnackedPushes;
  users: UserStore;
  /** Uids known to exist (users.existing, remembered up to CHAT_KNOWN_USERS_MAX and CHAT_KNOWN_USERS_TTL_MS). */
  knownUsers: KnownUsers;
  routes: RenewableRoutes;
  status: Api<typeof StatusServiceService>;
  ids: IdGenerator;
  peers: PeerDirectory;
  metrics: Metrics;
  /** Messages per second per connection and per user; friend applications, group creates and invites per day. */
  limits: ChatLimits;
  /** Friendships and applications; without it friend requests answer UNAVAILABLE. */
  friends?: FriendStore;
  /** Conversation lists and read cursors; without it those requests answer UNAVAILABLE. */
  conversations?: ConversationStore;
  /** Uploaded files' metadata: a file message must name a file its sender uploaded for that conversation. */
  files?: FileMetaStore;
  /**
   * Blocks between users (issue 17); without it block requests are not served
   * (UNKNOWN_MESSAGE_TYPE) and only the 1:1 append, which reads the marks itself, refuses.
   */
  blocks?: BlockStore;
  /** Reports for operators (issue 17); without it report requests are not served (UNKNOWN_MESSAGE_TYPE). */
  reports?: ReportStore;
  /** Webhook events besides stored messages (issue 18): absent when no endpoint is configured. */
  webhooks?: WebhookEvents;
  /** The before-send webhook (WEBHOOK_BEFORE_SEND_URL): absent when not configured. */
  beforeSend?: BeforeSendHook;
  /** Message sends are traced when it is on (TRACING_OTLP_URL): see dispatch. */
  tracing: Tracing;
  /** Work a reply does not wait for (delivery, kicks); the node awaits it on close. Must not reject. */
  background(task: Promise<void>): void;
}

export type RequestCase =
  | "loginReq"
  | "heartbeatReq"
  | "sendReq"
  | "syncReq"
  | "ackReq"
  | "historyReq"
  // Groups (issue 4).
  | "groupCreateReq"
  | "groupInviteReq"
  | "groupLeaveReq"
  | "groupKickReq"
  | "groupRenameReq"
  | "groupSetRoleReq"
  | "groupMembersReq"
  | "groupSendReq"
  | "groupListReq"
  | "groupInvitationsReq"
  | "groupInvitationReplyReq"
  // Users, friends, conversations (issue 4).
  | "searchUsersReq"
  | "friendApplyReq"
  | "friendReplyReq"
  | "friendListReq"
  | "friendRemoveReq"
  | "friendApplicationsReq"
  | "conversationListReq"
  | "markReadReq"
  // The message model (issue 16).
  | "recallReq"
  | "editReq"
  | "reactReq"
  | "deleteForMeReq"
  | "typingReq"
  | "forwardReq"
  // Safety and conversation management (issue 17).
  | "blockReq"
  | "unblockReq"
  | "blockListReq"
  | "reportReq"
  | "conversationSettingsReq"
  | "clearHistoryReq"
  | "groupMuteReq"
  | "groupMuteAllReq"
  | "groupAnnounceReq"
  | "groupDissolveReq"
  | "groupSetJoinApprovalReq"
  | "groupJoinReq"
  | "groupJoinRequestsReq"
  | "groupJoinReplyReq"
  | "groupSetRetentionReq";
type Body = NonNullable<Envelope["body"]>;
/** What a handler answers with (sent with the request's reqId). */
export type ReplyBody = Body;
/** A handler's result: the reply, or undefined when it replied itself. */
export type Reply = Promise<ReplyBody | undefined>;
export type RequestOf<C extends RequestCase> = Extract<Body, { $case: C }>["value"];

/** What the group handlers have: a node serves them only with a group store (servedHandlers). */
export type GroupsContext = HandlerContext & { groups: GroupStore };
/** What the friend handlers have: a node serves them only with a friend store. */
export type FriendsContext = HandlerContext & { friends: FriendStore };
/** What the conversation-list handlers have: a node serves them only with a conversation store. */
export type ConversationsContext = HandlerContext & { conversations: ConversationStore };
/** What the block handlers have: a node serves them only with a block store (issue 17). */
export type BlocksContext = HandlerContext & { blocks: BlockStore };
/** What the report handler has: a node serves it only with a report store (issue 17). */
export type ReportsContext = HandlerContext & { reports: ReportStore };

/** A session whose login succeeded: every handler but login's gets one (dispatch checks it). */
export type LoggedInSession = Session & { readonly uid: Uid };

/**
 * Answers one request: the reply body (sent with the request's reqId), or undefined when the
 * handler replied itself. Failures are thrown as AppError. The next request of the same lane
 * starts when this one ends, or earlier once it calls turn.release() (a send, as soon as its
 * place in the conversation is taken).
 */
export type Handler<C extends RequestCase, X extends HandlerContext = HandlerContext> = (
  ctx: X,
  session: C extends "loginReq" ? Session : LoggedInSession,
  request: RequestOf<C>,
  reqId: number,
  turn: LaneTurn,
) => Reply;

/** An error after which the session cannot go on (bad token, wrong node): reply, then close. */
export class FatalSessionError extends AppError {
  constructor(
    code: ErrorCode,
    message?: string,
    readonly redirect?: NodeAddress,
  ) {
    super(code, message);
  }
}

export function invalid(message: string): AppError {
  return new AppError(ErrorCode.INVALID_ARGUMENT, message);
}

/**
 * A store call, timed (shardchat_store_seconds{op}). Stores answer their failures in the error
 * table themselves (mysql/errors.ts, sqlite/errors.ts); anything else is a bug, which dispatch
 * logs and answers INTERNAL.
 */
export async function storage<T>(ctx: HandlerContext, what: string, call: () => Promise<T>): Promise<T> {
  const stop = ctx.metrics.storeSeconds.startTimer({ op: what });
  try {
    return await call();
  } finally {
    stop();
  }
}

/** A page of `size` from rows read with one extra (`size + 1`): the extra row says more follow. */
export function pageOf<T>(rows: T[], size: number): { page: T[]; more: boolean } {
  return { page: rows.slice(0, size), more: rows.length > size };
}

/** min(requested || max, max): 0 asks for the default page. */
export function pageSize(requested: number, max: number): number {
  return requested > 0 ? Math.min(requested, max) : max;
}

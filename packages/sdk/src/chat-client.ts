import { AppError, ErrorCode } from "@shardchat/protocol";
import {
  type BlockedUser,
  type ChatMessage,
  type ConversationSettings,
  type ConversationSettingsPush,
  type ConversationSummary,
  type CustomContent,
  type DeletedForMePush,
  DeviceKind,
  Envelope,
  type ErrorResponse,
  type Friend,
  type FriendApplication,
  type FriendRemovedPush,
  type FriendReplyPush,
  type GroupEventPush,
  type GroupInfo,
  type GroupInvitation,
  type GroupInvitationsResponse,
  type GroupInviteResponse,
  type GroupJoinApplication,
  type GroupListResponse,
  type GroupMembersResponse,
  GroupRole,
  type HistoryRequest,
  type KickPush,
  type LoginResponse,
  type MessageChangeResponse,
  MessageKind,
  type MovePush,
  type PresencePush,
  type ReadReceiptPush,
  type SendMessageResponse,
  type SyncResponse,
  type TypingPush,
  type UserInfo,
} from "@shardchat/protocol/wire";
import { EventEmitter } from "events";
import { nanoid } from "nanoid";
import { openWire } from "#wire";
import type { Endpoint, Wire } from "./endpoint.js";

type Body = NonNullable<Envelope["body"]>;
type Case = Body["$case"];
type ValueOf<C extends Case> = Extract<Body, { $case: C }>["value"];

/** Own seqs remembered per conversation above its cursor (see noteOwn). */
const MAX_OWN_SEQS = 1024;
/** Cursors in one automatic AckRequest (the node takes up to CHAT_SYNC_BATCH, 200 by default). */
const MAX_CURSORS_PER_ACK = 100;

export interface ChatClientOptions {
  /** Ack every pushed and synced message as delivered (default true). */
  autoAck?: boolean;
  /**
   * How long an automatic ack waits for more messages to ack with it (default 20 ms): under
   * load one AckRequest then covers many pushes instead of one each. Only the re-push timeout
   * (CHAT_PUSH_ACK_TIMEOUT_MS, seconds) is near it, so the wait costs nothing a user sees.
   */
  ackDelayMs?: number;
  /**
   * The highest seq this client already has per conversation (from `cursors()` of an earlier
   * connection): after a reconnect, repeats of what it had are dropped, so each message is
   * emitted once across connections, and a gap against it is filled.
   */
  seen?: ReadonlyMap<string, number>;
  /**
   * The device kind this session holds (default: unspecified, which the node takes as DESKTOP
   * over TCP and WEB over WebSocket). One session per kind: logging in on the same kind again
   * kicks the older session, another kind stays beside it.
   */
  device?: DeviceKind;
  /** Send heartbeats at the interval the node asks for (default true). */
  heartbeat?: boolean;
  /** How long to wait for a reply (default 10 s). */
  requestTimeoutMs?: number;
}

/** What `sendMessage` sends: text by default, custom content, a quote, mentions (groups). */
export interface OutgoingContent {
  text?: string;
  kind?: MessageKind;
  custom?: CustomContent;
  /** The seq of the message replied to, in the same conversation. */
  replyTo?: number;
  mentions?: { uids?: string[]; all?: boolean };
  /** The uploaded file a FILE or AUDIO message names (GateClient.upload's answer). */
  file?: { id: string; name: string; size: number | string; contentType: string };
}

/** A group just created, with who was asked to accept (the other member uids joined at once). */
export interface CreatedGroup extends GroupInfo {
  invited: string[];
}

export interface ChatClientEvents {
  /** A message pushed live, in seq order per conversation (gaps are filled before it is emitted). */
  message: [ChatMessage];
  kicked: [KickPush];
  /** Someone applied to be this user's friend (also listed by `friendApplications()` after login). */
  friendApplication: [FriendApplication];
  /** A user this one applied to accepted or declined. */
  friendReply: [FriendReplyPush];
  /** A friend removed this user. */
  friendRemoved: [FriendRemovedPush];
  /** `reader` read `convId` up to `seq`: the peer of a 1:1 conversation, or this user on another device. */
  readReceipt: [ReadReceiptPush];
  /** A friend came online (its first device) or went offline (its last). */
  presence: [PresencePush];
  /** The node hands this user to another node and closes the connection (ResilientChat follows it). */
  move: [MovePush];
  /** Someone in a conversation is typing: show it for `expiresInMs` unless renewed. */
  typing: [TypingPush];
  /** This user deleted messages for itself on another device. */
  deletedForMe: [DeletedForMePush];
  /**
   * This user changed a conversation's settings (`settings`) or cleared its history up to
   * `clearedSeq` (0: not cleared now) on another device.
   */
  conversationSettings: [ConversationSettingsPush];
  /** A change to a group this user is in (or was kicked from). */
  groupEvent: [GroupEventPush];
  /** An invitation into a group (also listed by `groupInvitations()`); answer with `answerGroupInvitation`. */
  groupInvitation: [GroupInvitation];
  /** Someone asks to join a group this user runs (also listed by `groupJoinRequests()`); answer with `answerGroupJoin`. */
  groupJoinRequest: [GroupJoinApplication];
  /**
   * A push of a message this client already has (delivery is at-least-once: the node pushes
   * again what was not acked in time, or before a reconnect). Never emitted as `message`.
   */
  repeat: [ChatMessage];
  /**
   * `syncAll` returned early: a page failed (e.g. STORAGE_UNAVAILABLE while a shard is down)
   * after earlier pages were received and acked, which it returned. Call it again later.
   */
  syncIncomplete: [AppError];
  /** An error the node pushed outside any request (req_id 0), e.g. for an undecodable frame. */
  errorPush: [ErrorResponse];
  close: [string];
}

/**
 * A typed client of one chat node session. Requests are promises matched to replies by
 * req_id; an `error` reply rejects with AppError carrying the node's code (and `redirect`
 * for WRONG_NODE). Live messages are ordered per conversation: a push after a gap first
 * fetches the missing range.
 */
export class ChatClient extends EventEmitter<ChatClientEvents> {
  private nextReqId = 1;
  private readonly pending = new Map<
    number,
    { expect: Case; resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly lastSeq = new Map<string, number>();
  private delivering: Promise<void> = Promise.resolve();
  /** Seqs of messages this session sent, above the cursor of their conversation. */
  private readonly ownSeqs = new Map<string, Set<number>>();
  /** Cursors waiting to be acked (autoAck): the highest seq per conversation. */
  private readonly ackQueue = new Map<string, number>();
  private acking = false;
  closed = false;
  uid = "";

  private constructor(
    private readonly wire: Wire,
    private readonly options: Required<ChatClientOptions>,
  ) {
    super();
    for (const [convId, seq] of options.seen) this.lastSeq.set(convId, seq);
    wire.onEnvelope((e) => this.onEnvelope(e));
    wire.onClose((reason) => {
      this.closed = true;
      clearInterval(this.heartbeatTimer);
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new AppError(ErrorCode.UNAVAILABLE, `connection closed: ${reason}`));
        this.pending.delete(id);
      }
      this.emit("close", reason);
    });
  }

  static async connect(endpoint: Endpoint, options: ChatClientOptions = {}): Promise<ChatClient> {
    const wire = await openWire(endpoint);
    return new ChatClient(wire, {
      autoAck: true,
      ackDelayMs: 20,
      heartbeat: true,
      requestTimeoutMs: 10_000,
      seen: new Map(),
      device: DeviceKind.UNSPECIFIED,
      ...options,
    });
  }

  async login(uid: string, token: string): Promise<LoginResponse> {
    const device = this.options.device === DeviceKind.UNSPECIFIED ? undefined : this.options.device;
    const reply = await this.request("loginReq", { uid, token, device }, "loginResp");
    this.uid = uid;
    if (this.options.heartbeat) {
      this.heartbeatTimer = setInterval(() => {
        this.request("heartbeatReq", { clientTimeMs: String(Date.now()) }, "heartbeatResp").catch(() => {});
      }, reply.heartbeatIntervalMs);
      // Node's timers have unref (the heartbeat alone must not keep a process alive); a browser's do not.
      (this.heartbeatTimer as { unref?: () => void }).unref?.();
    }
    return reply;
  }

  /** Sends a text; answers the node's ack once the message is stored. */
  sendText(toUid: string, text: string, clientMsgId: string = nanoid()): Promise<SendMessageResponse> {
    return this.request("sendReq", { toUid, clientMsgId, kind: MessageKind.TEXT, text }, "sendResp");
  }

  /**
   * Sends a voice message (MESSAGE_KIND_AUDIO) naming a recording uploaded to gate as audio/*
   * (GateClient.upload with its durationMs); the node refuses any other file (INVALID_ARGUMENT).
   */
  sendVoice(
    toUid: string,
    file: { id: string; name: string; size: number | string; contentType: string },
    clientMsgId: string = nanoid(),
  ): Promise<SendMessageResponse> {
    const ref = { id: file.id, name: file.name, size: String(file.size), contentType: file.contentType };
    return this.request("sendReq", { toUid, clientMsgId, kind: MessageKind.AUDIO, text: "", file: ref }, "sendResp");
  }

  /** Sends a file message naming a file uploaded to gate (GateClient.upload); the bytes stay on gate. */
  sendFile(
    toUid: string,
    file: { id: string; name: string; size: number | string; contentType: string },
    caption = "",
    clientMsgId: string = nanoid(),
  ): Promise<SendMessageResponse> {
    const ref = { id: file.id, name: file.name, size: String(file.size), contentType: file.contentType };
    return this.request(
      "sendReq",
      { toUid, clientMsgId, kind: MessageKind.FILE, text: caption, file: ref },
      "sendResp",
    );
  }

  /**
   * Sends a message of any kind to a user or a group: text, a custom message (`custom`), a
   * file or voice message (`kind` FILE or AUDIO with `file`), a reply (`replyTo`: a seq of the
   * same conversation), mentions (groups only).
   */
  sendMessage(
    to: { toUid: string } | { groupId: string },
    content: OutgoingContent,
    clientMsgId: string = nanoid(),
  ): Promise<SendMessageResponse> {
    const kind = content.kind ?? (content.custom ? MessageKind.CUSTOM : MessageKind.TEXT);
    const file = content.file && {
      id: content.file.id,
      name: content.file.name,
      size: String(content.file.size),
      contentType: content.file.contentType,
    };
    const common = {
      clientMsgId,
      kind,
      text: content.text ?? "",
      file,
      custom: content.custom,
      replyTo: content.replyTo === undefined ? undefined : { seq: content.replyTo },
    };
    if ("groupId" in to) {
      const mentions = content.mentions && { uids: content.mentions.uids ?? [], all: content.mentions.all ?? false };
      return this.request("groupSendReq", { groupId: to.groupId, ...common, mentions }, "groupSendResp");
    }
    return this.request("sendReq", { toUid: to.toUid, ...common }, "sendResp");
  }

  /** Recalls a message for everyone (its sender within the window; a group's admins any time). */
  recall(convId: string, seq: number): Promise<MessageChangeResponse> {
    return this.request("recallReq", { convId, seq }, "recallResp");
  }

  /** Replaces the text of one's own message (within the edit window). */
  edit(convId: string, seq: number, text: string): Promise<MessageChangeResponse> {
    return this.request("editReq", { convId, seq, text }, "editResp");
  }

  /** Adds (or with add = false removes) this user's reaction on a message. */
  react(convId: string, seq: number, emoji: string, add = true): Promise<MessageChangeResponse> {
    return this.request("reactReq", { convId, seq, emoji, add }, "reactResp");
  }

  /** Hides messages from this user on all of its devices. */
  async deleteForMe(convId: string, seqs: number[]): Promise<void> {
    await this.request("deleteForMeReq", { convId, seqs }, "deleteForMeResp");
  }

  /** Tells the conversation this user is typing; not answered (call it again while typing). */
  typing(convId: string): void {
    if (this.closed) return;
    this.wire.send(Envelope.fromPartial({ reqId: 0, body: { $case: "typingReq", value: { convId } } }));
  }

  /** Copies a message into a 1:1 conversation or a group, as this user's, naming its origin. */
  forward(
    from: { convId: string; seq: number },
    to: { toUid: string } | { groupId: string },
    clientMsgId: string = nanoid(),
  ): Promise<SendMessageResponse> {
    const target = "groupId" in to ? { toUid: "0", groupId: to.groupId } : { toUid: to.toUid, groupId: "0" };
    return this.request(
      "forwardReq",
      { fromConvId: from.convId, seq: from.seq, ...target, clientMsgId },
      "forwardResp",
    );
  }

  sync(limit = 0): Promise<SyncResponse> {
    return this.request("syncReq", { limit }, "syncResp");
  }

  /**
   * Every message waiting for this user, acking page by page. A page that fails after others
   * were acked ends it early with what came (`syncIncomplete` says so); a first page that
   * fails throws.
   */
  async syncAll(): Promise<ChatMessage[]> {
    const all: ChatMessage[] = [];
    for (;;) {
      let page: SyncResponse;
      try {
        page = await this.sync();
      } catch (err) {
        // Earlier pages were acked: the node will not send them again, so they are answered
        // rather than lost behind the error.
        if (all.length === 0 || !(err instanceof AppError)) throw err;
        this.emit("syncIncomplete", err);
        return all;
      }
      all.push(...page.messages);
      for (const m of page.messages) this.noteSeen(m);
      if (page.messages.length > 0) await this.ack(page.messages);
      if (!page.more) return all;
    }
  }

  async ack(messages: Pick<ChatMessage, "convId" | "seq">[]): Promise<void> {
    const top = new Map<string, number>();
    for (const m of messages) top.set(m.convId, Math.max(top.get(m.convId) ?? 0, m.seq));
    const cursors = [...top].map(([convId, seq]) => ({ convId, seq }));
    await this.request("ackReq", { cursors }, "ackResp");
  }

  async history(query: Partial<HistoryRequest> & { convId: string }): Promise<ChatMessage[]> {
    return (await this.historyPage(query)).messages;
  }

  /**
   * history() with the first seq this user may read there (`firstSeq`, 1 unless it cleared the
   * history): seqs below it are not gaps.
   */
  async historyPage(
    query: Partial<HistoryRequest> & { convId: string },
  ): Promise<{ messages: ChatMessage[]; firstSeq: number }> {
    const reply = await this.request("historyReq", { afterSeq: 0, beforeSeq: 0, limit: 0, ...query }, "historyResp");
    return { messages: reply.messages, firstSeq: Math.max(1, reply.firstSeq ?? 1) };
  }

  /** The highest seq seen per conversation; pass it as `seen` to the next connection. */
  cursors(): Map<string, number> {
    return new Map(this.lastSeq);
  }

  /**
   * Creates a group owned by this user and invites these users: `invited` are asked to accept
   * (the server's GROUP_JOIN_CONSENT says who joins at once); the others are members.
   */
  async createGroup(name: string, memberUids: string[] = []): Promise<CreatedGroup> {
    const reply = await this.request("groupCreateReq", { name, memberUids }, "groupCreateResp");
    if (!reply.group) throw new AppError(ErrorCode.INTERNAL, "no group in the reply");
    return { ...reply.group, invited: reply.invited };
  }

  /** Invites users (admins and the owner): who joined at once (`added`) and who was asked (`invited`). */
  inviteToGroup(groupId: string, uids: string[]): Promise<GroupInviteResponse> {
    return this.request("groupInviteReq", { groupId, uids }, "groupInviteResp");
  }

  /** One page of this user's open group invitations, newest first; ask again with beforeMs = the last one's createdAtMs while `more`. */
  groupInvitations(beforeMs = "0", limit = 0): Promise<GroupInvitationsResponse> {
    return this.request("groupInvitationsReq", { beforeMs, limit }, "groupInvitationsResp");
  }

  /** Accepts (answers the group joined) or declines (answers undefined) an invitation. */
  async answerGroupInvitation(groupId: string, accept: boolean): Promise<GroupInfo | undefined> {
    return (await this.request("groupInvitationReplyReq", { groupId, accept }, "groupInvitationReplyResp")).group;
  }

  async leaveGroup(groupId: string): Promise<void> {
    await this.request("groupLeaveReq", { groupId }, "groupLeaveResp");
  }

  async kickFromGroup(groupId: string, uid: string): Promise<void> {
    await this.request("groupKickReq", { groupId, uid }, "groupKickResp");
  }

  async renameGroup(groupId: string, name: string): Promise<GroupInfo> {
    const reply = await this.request("groupRenameReq", { groupId, name }, "groupRenameResp");
    if (!reply.group) throw new AppError(ErrorCode.INTERNAL, "no group in the reply");
    return reply.group;
  }

  async setGroupRole(groupId: string, uid: string, role: GroupRole.MEMBER | GroupRole.ADMIN): Promise<void> {
    await this.request("groupSetRoleReq", { groupId, uid, role }, "groupSetRoleResp");
  }

  /** The owner hands the group to member `uid` and becomes an admin. */
  async transferGroup(groupId: string, uid: string): Promise<void> {
    await this.request("groupSetRoleReq", { groupId, uid, role: GroupRole.OWNER }, "groupSetRoleResp");
  }

  /** One page of members in uid order; ask again with afterUid = the page's last uid while `more`. */
  groupMembers(groupId: string, afterUid = "0", limit = 0): Promise<GroupMembersResponse> {
    return this.request("groupMembersReq", { groupId, afterUid, limit }, "groupMembersResp");
  }

  /** Every member, page by page. */
  async allGroupMembers(groupId: string): Promise<GroupMembersResponse["members"]> {
    const all: GroupMembersResponse["members"] = [];
    for (let after = "0"; ; ) {
      const page = await this.groupMembers(groupId, after);
      all.push(...page.members);
      const last = page.members.at(-1);
      if (!page.more || !last) return all;
      after = last.uid;
    }
  }

  /** One page of this user's groups by group id; ask again with afterGroupId = the page's last id while `more`. */
  groupPage(afterGroupId = "0", limit = 0): Promise<GroupListResponse> {
    return this.request("groupListReq", { afterGroupId, limit }, "groupListResp");
  }

  /** Every group this user is in, page by page. */
  async listGroups(): Promise<GroupInfo[]> {
    const all: GroupInfo[] = [];
    for (let after = "0"; ; ) {
      const page = await this.groupPage(after);
      all.push(...page.groups);
      const last = page.groups.at(-1);
      if (!page.more || !last) return all;
      after = last.groupId;
    }
  }

  /** Posts a text to a group; the same clientMsgId again answers the stored message (duplicate). */
  sendGroupText(groupId: string, text: string, clientMsgId: string = nanoid()): Promise<SendMessageResponse> {
    return this.request("groupSendReq", { groupId, clientMsgId, kind: MessageKind.TEXT, text }, "groupSendResp");
  }

  /** A file uploaded for the group's conversation (GateClient.upload with the group's convId). */
  sendGroupFile(
    groupId: string,
    file: { id: string; name: string; size: number | string; contentType: string },
    caption = "",
    clientMsgId: string = nanoid(),
  ): Promise<SendMessageResponse> {
    const ref = { id: file.id, name: file.name, size: String(file.size), contentType: file.contentType };
    return this.request(
      "groupSendReq",
      { groupId, clientMsgId, kind: MessageKind.FILE, text: caption, file: ref },
      "groupSendResp",
    );
  }

  // ---- Group moderation (issue 17).

  /**
   * Mutes a member of a lower role for `durationSeconds` (0 unmutes), or until unmuted with
   * "forever"; answers until when (ms, 0: not muted).
   */
  async muteGroupMember(groupId: string, uid: string, durationSeconds: number | "forever"): Promise<number> {
    const forever = durationSeconds === "forever";
    const reply = await this.request(
      "groupMuteReq",
      { groupId, uid, durationSeconds: forever ? 0 : durationSeconds, forever },
      "groupMuteResp",
    );
    return Number(reply.untilMs);
  }

  /** Only admins and the owner post (true), or everyone again (false). */
  async muteGroup(groupId: string, muted: boolean): Promise<void> {
    await this.request("groupMuteAllReq", { groupId, muted }, "groupMuteAllResp");
  }

  /** Sets the group's announcement ("" removes it); answers the group with it. */
  async announceInGroup(groupId: string, text: string): Promise<GroupInfo> {
    const reply = await this.request("groupAnnounceReq", { groupId, text }, "groupAnnounceResp");
    if (!reply.group) throw new AppError(ErrorCode.INTERNAL, "no group in the reply");
    return reply.group;
  }

  /** The owner dissolves the group: nobody posts again; members are told. */
  async dissolveGroup(groupId: string): Promise<void> {
    await this.request("groupDissolveReq", { groupId }, "groupDissolveResp");
  }

  /** New members join only when an admin approves their join request (true), or not (false). */
  async setGroupJoinApproval(groupId: string, required: boolean): Promise<void> {
    await this.request("groupSetJoinApprovalReq", { groupId, required }, "groupSetJoinApprovalResp");
  }

  /** Asks to join a group that requires approval; its admins are told. */
  async requestToJoinGroup(groupId: string, message = ""): Promise<void> {
    await this.request("groupJoinReq", { groupId, message }, "groupJoinResp");
  }

  /** A group's open join requests, newest first (admins and the owner). */
  async groupJoinRequests(groupId: string): Promise<GroupJoinApplication[]> {
    return (await this.request("groupJoinRequestsReq", { groupId }, "groupJoinRequestsResp")).requests;
  }

  /** Admits (uid joins) or declines a join request. */
  async answerGroupJoin(groupId: string, uid: string, accept: boolean): Promise<void> {
    await this.request("groupJoinReplyReq", { groupId, uid, accept }, "groupJoinReplyResp");
  }

  /**
   * Retention (issue 17): the group's messages are deleted ttlSeconds after they were sent (0:
   * the deployment's MESSAGE_TTL_SECONDS). Admins and the owner; members are told (RETENTION).
   */
  async setGroupRetention(groupId: string, ttlSeconds: number): Promise<void> {
    await this.request("groupSetRetentionReq", { groupId, ttlSeconds }, "groupSetRetentionResp");
  }

  /** Users by exact uid (all digits), exact email (with "@"), or name prefix; never their emails. */
  async searchUsers(query: string, limit = 0): Promise<UserInfo[]> {
    return (await this.request("searchUsersReq", { query, limit }, "searchUsersResp")).users;
  }

  /** Asks toUid to be friends; toUid is pushed the application on whatever node it is. */
  async applyFriend(toUid: string, message = ""): Promise<void> {
    await this.request("friendApplyReq", { toUid, message }, "friendApplyResp");
  }

  /** Accepts (or, with accept = false, declines) the pending application from fromUid. */
  async replyFriend(fromUid: string, accept: boolean): Promise<void> {
    await this.request("friendReplyReq", { fromUid, accept }, "friendReplyResp");
  }

  /** Friends with presence (online on any device). */
  async friends(): Promise<Friend[]> {
    return (await this.request("friendListReq", {}, "friendListResp")).friends;
  }

  async removeFriend(uid: string): Promise<void> {
    await this.request("friendRemoveReq", { uid }, "friendRemoveResp");
  }

  /** Applications waiting for this user's answer, newest first (ask after login). */
  async friendApplications(): Promise<FriendApplication[]> {
    return (await this.request("friendApplicationsReq", {}, "friendApplicationsResp")).applications;
  }

  /**
   * Blocks uid: neither may then message, befriend or invite the other (BLOCKED), and a
   * friendship between them ends. uid is not told.
   */
  async block(uid: string): Promise<void> {
    await this.request("blockReq", { uid }, "blockResp");
  }

  /** Ends this user's block of uid (a friendship is not restored). */
  async unblock(uid: string): Promise<void> {
    await this.request("unblockReq", { uid }, "unblockResp");
  }

  /** The users this user blocked, the most recent first. */
  async blockList(): Promise<BlockedUser[]> {
    return (await this.request("blockListReq", {}, "blockListResp")).users;
  }

  /**
   * Reports a user ({ uid }) or a message ({ convId, seq }) to the operators, with a reason;
   * answers the report's id.
   */
  async report(target: { uid: string } | { convId: string; seq: number }, reason: string): Promise<string> {
    const value = "uid" in target ? { uid: target.uid, convId: "", seq: 0 } : { uid: "0", ...target };
    return (await this.request("reportReq", { ...value, reason }, "reportResp")).reportId;
  }

  /** Conversations, the most recently active first, with the last message and unread count. */
  async conversations(limit = 0): Promise<ConversationSummary[]> {
    return (await this.request("conversationListReq", { limit }, "conversationListResp")).conversations;
  }

  /** Marks convId read up to seq; answers the read cursor after it (it never moves back). */
  async markRead(convId: string, seq: number): Promise<number> {
    return (await this.request("markReadReq", { convId, seq }, "markReadResp")).readSeq;
  }

  /**
   * Changes this user's settings of a conversation (pin, mute, hide until the next message;
   * fields left out stay); answers them all. Its other devices get `conversationSettings`.
   */
  async conversationSettings(
    convId: string,
    patch: Partial<ConversationSettings> = {},
  ): Promise<ConversationSettings | undefined> {
    const { pinned, muted, hidden } = patch;
    return (
      await this.request("conversationSettingsReq", { convId, pinned, muted, hidden }, "conversationSettingsResp")
    ).settings;
  }

  /**
   * Clears convId's history for this user alone, up to seq (0: the newest): history and sync
   * start after the answered seq on all of its devices; the other members keep theirs.
   */
  async clearHistory(convId: string, seq = 0): Promise<number> {
    return (await this.request("clearHistoryReq", { convId, seq }, "clearHistoryResp")).clearedSeq;
  }

  heartbeat(): Promise<ValueOf<"heartbeatResp">> {
    return this.request("heartbeatReq", { clientTimeMs: String(Date.now()) }, "heartbeatResp");
  }

  /** Sends any envelope body and waits for the reply of the expected kind. */
  request<C extends Case, R extends Case>(kind: C, value: ValueOf<C>, expect: R): Promise<ValueOf<R>> {
    return this.requestWith(expect, (reqId) =>
      this.wire.send(Envelope.fromPartial({ reqId, body: { $case: kind, value } as Body })),
    );
  }

  /** Sends whatever `send` writes for a fresh req_id and waits for the reply to that req_id. */
  requestWith<R extends Case>(expect: R, send: (reqId: number) => void): Promise<ValueOf<R>> {
    if (this.closed) return Promise.reject(new AppError(ErrorCode.UNAVAILABLE, "connection closed"));
    const reqId = this.nextReqId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new AppError(ErrorCode.UNAVAILABLE, `no ${expect} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this.pending.set(reqId, { expect, resolve: resolve as (v: unknown) => void, reject, timer });
      send(reqId);
    });
  }

  /** Bytes or text as they are: for tests of what a broken client sends. */
  sendRaw(data: Uint8Array | string): void {
    this.wire.sendRaw(data);
  }

  /** Sends an envelope without waiting for anything. */
  sendEnvelope(envelope: Envelope): void {
    this.wire.send(envelope);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once("close", () => resolve());
      this.wire.close();
    });
  }

  private onEnvelope(envelope: Envelope): void {
    const body = envelope.body;
    if (!body) return;
    if (envelope.reqId !== 0) {
      const waiting = this.pending.get(envelope.reqId);
      if (!waiting) return;
      this.pending.delete(envelope.reqId);
      clearTimeout(waiting.timer);
      if (body.$case === "error") {
        const err = new AppError(body.value.code, body.value.message) as AppError & { redirect?: unknown };
        err.redirect = body.value.redirect;
        waiting.reject(err);
      } else if (body.$case !== waiting.expect) {
        waiting.reject(new AppError(ErrorCode.INTERNAL, `expected ${waiting.expect}, got ${body.$case}`));
      } else {
        if (body.$case === "sendResp" || body.$case === "groupSendResp" || body.$case === "forwardResp")
          this.noteOwn(body.value.convId, body.value.seq);
        // A change's event takes a seq of its conversation and is not pushed back here either.
        if (
          (body.$case === "recallResp" || body.$case === "editResp" || body.$case === "reactResp") &&
          body.value.event
        )
          this.noteOwn(body.value.event.convId, body.value.event.seq);
        waiting.resolve(body.value);
      }
      return;
    }
    if (body.$case === "messagePush" && body.value.message) {
      const message = body.value.message;
      this.delivering = this.delivering.then(() => this.deliverInOrder(message)).catch(() => {});
    } else if (body.$case === "typingPush") {
      this.emit("typing", body.value);
    } else if (body.$case === "deletedForMePush") {
      this.emit("deletedForMe", body.value);
    } else if (body.$case === "conversationSettingsPush") {
      this.emit("conversationSettings", body.value);
    } else if (body.$case === "groupEventPush") {
      this.emit("groupEvent", body.value);
    } else if (body.$case === "groupInvitationPush" && body.value.invitation) {
      this.emit("groupInvitation", body.value.invitation);
    } else if (body.$case === "groupJoinRequestPush" && body.value.application) {
      this.emit("groupJoinRequest", body.value.application);
    } else if (body.$case === "friendApplicationPush" && body.value.application) {
      this.emit("friendApplication", body.value.application);
    } else if (body.$case === "friendReplyPush") {
      this.emit("friendReply", body.value);
    } else if (body.$case === "friendRemovedPush") {
      this.emit("friendRemoved", body.value);
    } else if (body.$case === "readReceiptPush") {
      this.emit("readReceipt", body.value);
    } else if (body.$case === "presencePush") {
      this.emit("presence", body.value);
    } else if (body.$case === "kickPush") {
      this.emit("kicked", body.value);
    } else if (body.$case === "movePush") {
      this.emit("move", body.value);
    } else if (body.$case === "error") {
      this.emit("errorPush", body.value);
    }
  }

  /** Emits a pushed message after any missing earlier ones, each once. */
  private async deliverInOrder(message: ChatMessage): Promise<void> {
    this.absorbOwn(message.convId);
    if (!this.lastSeq.has(message.convId) && message.seq > 1) {
      // The first push of a conversation this connection knows nothing of, and not its first
      // message: an earlier one may still be on its way (the fan-outs of two posts race, from
      // two nodes), and taking this one as the start would turn that one into a "repeat". What
      // the user has not acked yet says what comes first. (One page of it: a user with more
      // than a page waiting elsewhere may still see a late one dropped; sync finds it.)
      const earlier = await this.sync()
        .then((page) => page.messages.filter((m) => m.convId === message.convId && m.seq < message.seq))
        .catch(() => []);
      for (const m of earlier.sort((a, b) => a.seq - b.seq)) this.emitMessage(m);
    }
    const seen = this.lastSeq.get(message.convId);
    if (seen !== undefined && message.seq <= seen) {
      // A re-push: the ack that would have stopped it was lost or late, so ack again.
      this.emit("repeat", message);
      if (this.options.autoAck) this.ackSoon(message);
      return;
    }
    // A gap: fetch the missing range page by page (a node answers at most CHAT_SYNC_BATCH).
    for (let after = seen ?? message.seq; message.seq > after + 1; ) {
      const from = after;
      const missing = await this.history({ convId: message.convId, afterSeq: from, limit: message.seq - from - 1 });
      const inRange = missing.filter((m) => m.seq > from && m.seq < message.seq);
      for (const m of inRange) this.emitMessage(m);
      const last = inRange.at(-1);
      if (!last) break;
      after = last.seq;
    }
    this.emitMessage(message);
    if (this.options.autoAck) this.ackSoon(message);
  }

  /**
   * Acks pushes without a reply: an AckRequest with req_id 0 is not answered, so each costs
   * the node no write and this client no wakeup. Cursors of the pushes that arrive within
   * ackDelayMs (0: those of one turn of the event loop) collect, the highest seq per
   * conversation, and leave together.
   */
  private ackSoon(message: Pick<ChatMessage, "convId" | "seq">): void {
    this.ackQueue.set(message.convId, Math.max(this.ackQueue.get(message.convId) ?? 0, message.seq));
    if (this.acking) return;
    this.acking = true;
    setTimeout(() => this.flushAcks(), this.options.ackDelayMs ?? 0);
  }

  private flushAcks(): void {
    this.acking = false;
    while (this.ackQueue.size > 0 && !this.closed) {
      const cursors = [...this.ackQueue].slice(0, MAX_CURSORS_PER_ACK).map(([convId, seq]) => ({ convId, seq }));
      for (const c of cursors) this.ackQueue.delete(c.convId);
      this.wire.send(Envelope.fromPartial({ reqId: 0, body: { $case: "ackReq", value: { cursors } } }));
    }
  }

  private emitMessage(message: ChatMessage): void {
    this.noteSeen(message);
    this.emit("message", message);
  }

  private noteSeen(message: ChatMessage): void {
    this.lastSeq.set(message.convId, Math.max(this.lastSeq.get(message.convId) ?? 0, message.seq));
    this.absorbOwn(message.convId);
  }

  /**
   * A message this session sent took `seq`: it is never pushed back here, so without this the
   * next push from the peer looked like a gap and cost a history round trip (queued behind our
   * own sends on the node) while every later push waited.
   */
  private noteOwn(convId: string, seq: number): void {
    if (!convId || !(seq > 0)) return;
    const seen = this.lastSeq.get(convId);
    if (seen !== undefined && seq <= seen) return;
    // Nothing can come before seq 1: the conversation starts with our message.
    if (seen === undefined && seq === 1) {
      this.lastSeq.set(convId, 1);
      this.absorbOwn(convId);
      return;
    }
    let own = this.ownSeqs.get(convId);
    if (!own) {
      own = new Set();
      this.ownSeqs.set(convId, own);
    }
    own.add(seq);
    // Bounded: forgetting one only costs a history call later.
    if (own.size > MAX_OWN_SEQS) own.delete(Math.min(...own));
    this.absorbOwn(convId);
  }

  /** Moves the cursor over our own messages right after it. */
  private absorbOwn(convId: string): void {
    const own = this.ownSeqs.get(convId);
    const seen = this.lastSeq.get(convId);
    if (!own || seen === undefined) return;
    let next = seen + 1;
    while (own.delete(next)) next += 1;
    if (next - 1 > seen) this.lastSeq.set(convId, next - 1);
    for (const s of own) if (s <= next - 1) own.delete(s);
    if (own.size === 0) this.ownSeqs.delete(convId);
  }
}

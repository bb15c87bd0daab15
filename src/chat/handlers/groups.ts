import {
  type ChatMessage,
  GroupEventKind,
  type GroupEventPush,
  type GroupInfo,
  type GroupInvitation,
  type Mentions,
} from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../errors.js";
import { groupConvId, isUid, requireUid } from "../../ids/identifiers.js";
import { sampled } from "../../log/logger.js";
import {
  GROUP_ROLE,
  type GroupRecord,
  type GroupRoleValue,
  type StoredMentions,
  type Uid,
} from "../../storage/ports.js";
import { recordGroupEvent } from "../../webhooks/events.js";
import type { Session } from "../session.js";
import { checkBeforeSend } from "./before-send.js";
import { refuseBlocked } from "./blocks.js";
import type { GroupsContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageOf, pageSize, storage } from "./context.js";
import { namesOf } from "./friends.js";
import { type Answer, type PreparedMessage, preparedMessage, storedReply, validateContent, withQuote } from "./send.js";

/** A group as clients see it; each moderation field only when set (absent reads as false / none). */
export function toInfo(g: GroupRecord): GroupInfo {
  const a = g.announcement;
  return {
    groupId: g.groupId,
    convId: g.convId,
    name: g.name,
    owner: g.owner,
    memberCount: g.memberCount,
    createdAtMs: String(g.createdAt),
    mutedAll: g.mutedAll ? true : undefined,
    announcement: a ? { text: a.text, by: a.by, atMs: String(a.atMs) } : undefined,
    joinApproval: g.joinApproval ? true : undefined,
    dissolved: g.dissolved ? true : undefined,
    messageTtlSeconds: g.messageTtlSeconds || undefined,
  };
}

export function checkGroupId(groupId: string): void {
  if (!isUid(groupId)) throw invalid("groupId must be a decimal group id");
}

function checkName(ctx: GroupsContext, name: string): void {
  const chars = [...name.trim()].length;
  if (chars < 1 || chars > ctx.config.GROUP_NAME_MAX_CHARS) {
    throw invalid(`name must be 1..${ctx.config.GROUP_NAME_MAX_CHARS} characters`);
  }
}

/** The caller's role; NOT_GROUP_MEMBER when it has none (also for a group that does not exist). */
export async function roleOf(ctx: GroupsContext, groupId: string, uid: Uid): Promise<GroupRoleValue> {
  const role = await storage(ctx, "group role", () => ctx.groups.roleOf(groupId, uid));
  if (role === null) throw new AppError(ErrorCode.NOT_GROUP_MEMBER, `not a member of group ${groupId}`);
  return role;
}

/**
 * The role the caller acts with: its own, or the owner's for the Server API (a privileged
 * session manages any group whatever its uid's role; the group must exist).
 */
export async function actingRole(
  ctx: GroupsContext,
  session: LoggedInSession,
  groupId: string,
): Promise<GroupRoleValue> {
  if (!session.privileged) return roleOf(ctx, groupId, session.uid);
  await requireGroup(ctx, groupId);
  return GROUP_ROLE.owner;
}

/** Who joins at once and who is asked: the Server API adds everyone directly. */
async function joinOrAsk(
  ctx: GroupsContext,
  session: LoggedInSession,
  uids: Uid[],
): Promise<{ join: Uid[]; ask: Uid[] }> {
  return session.privileged ? { join: uids, ask: [] } : byConsent(ctx, session.uid, uids);
}

export async function requireGroup(ctx: GroupsContext, groupId: string): Promise<GroupRecord> {
  const group = await storage(ctx, "group lookup", () => ctx.groups.get(groupId));
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  return group;
}

/** Unknown uids are refused as a whole (PEER_NOT_FOUND names the first). */
async function requireUsers(ctx: GroupsContext, uids: Uid[]): Promise<void> {
  if (uids.length === 0) return;
  const existing = await storage(ctx, "user lookup", () => ctx.knownUsers.existing(uids));
  const missing = uids.find((uid) => !existing.has(uid));
  if (missing !== undefined) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${missing}`);
}

/**
 * Issue 17: an invitee who blocked the inviter, or whom the inviter blocked, refuses the whole
 * request (create or invite) with BLOCKED before anything is written or counted; the error names
 * nobody, so the inviter learns only that someone in the list cannot be invited by it.
 */
const INVITE_BLOCKED = "one of these users cannot be invited by you";

function checkUids(ctx: GroupsContext, uids: string[]): Uid[] {
  if (!uids.every(isUid)) throw invalid("uids must be decimal user ids");
  const unique = [...new Set(uids)];
  if (unique.length > ctx.config.GROUP_MAX_MEMBERS) {
    throw new AppError(ErrorCode.GROUP_TOO_LARGE, `${unique.length} uids > ${ctx.config.GROUP_MAX_MEMBERS}`);
  }
  return unique;
}

/**
 * Who of the invitees joins at once (GROUP_JOIN_CONSENT) and who is asked to accept:
 * "friends" lets the inviter's friends in (one read each, on the inviter's shard).
 */
async function byConsent(ctx: GroupsContext, inviter: Uid, uids: Uid[]): Promise<{ join: Uid[]; ask: Uid[] }> {
  const consent = ctx.config.GROUP_JOIN_CONSENT;
  if (consent === "none" || uids.length === 0) return { join: uids, ask: [] };
  const friends = ctx.friends;
  if (consent === "invitation" || !friends) return { join: [], ask: uids };
  const isFriend = await storage(ctx, "friend check", () =>
    Promise.all(uids.map((uid) => friends.areFriends(inviter, uid))),
  );
  return { join: uids.filter((_, i) => isFriend[i]), ask: uids.filter((_, i) => !isFriend[i]) };
}

/** Invitations created before this are expired (GROUP_INVITATION_TTL_SECONDS). */
function openSince(ctx: GroupsContext): number {
  return Date.now() - ctx.config.GROUP_INVITATION_TTL_SECONDS * 1000;
}

/** An invitation as the client sees it, with the inviter's name. */
function invitationOf(group: GroupRecord, inviter: Uid, createdAt: number, names: Map<Uid, string>): GroupInvitation {
  return {
    group: toInfo(group),
    inviter: { uid: inviter, name: names.get(inviter) ?? "" },
    createdAtMs: String(createdAt),
  };
}

/** Records invitations for `uids` and pushes each invitee one; answers who was invited. */
async function invite(ctx: GroupsContext, group: GroupRecord, inviter: Uid, uids: Uid[]): Promise<Uid[]> {
  if (uids.length === 0) return [];
  const now = Date.now();
  const invited = await storage(ctx, "group invite", () => ctx.groups.invite(group.groupId, inviter, uids, now));
  if (invited.length > 0) {
    const invitation = invitationOf(group, inviter, now, await namesOf(ctx, [inviter]));
    ctx.background(
      ctx.fanout.notice(invited, { reqId: 0, body: { $case: "groupInvitationPush", value: { invitation } } }),
    );
  }
  return invited;
}

export async function groupCreate(
  ctx: GroupsContext,
  session: LoggedInSession,
  { name, memberUids }: RequestOf<"groupCreateReq">,
): Reply {
  const owner = session.uid;
  checkName(ctx, name);
  const wanted = checkUids(ctx, memberUids).filter((uid) => uid !== owner);
  await requireUsers(ctx, wanted);
  await refuseBlocked(ctx, owner, wanted, INVITE_BLOCKED);
  if (!session.privileged) {
    await ctx.limits.groupCreate(owner);
    await ctx.limits.groupInvites(owner, wanted.length);
  }
  const { join, ask } = await joinOrAsk(ctx, session, wanted);
  const group = await storage(ctx, "group create", () =>
    ctx.groups.create({
      groupId: ctx.ids.next(),
      name: name.trim(),
      owner,
      members: join,
      maxMembers: ctx.config.GROUP_MAX_MEMBERS,
    }),
  );
  const invited = await invite(ctx, group, owner, ask);
  const created = { kind: GroupEventKind.CREATED, group: toInfo(group), actor: owner, uids: join, role: 0 };
  if (join.length > 0) ctx.background(announce(ctx, join, created));
  // Nobody to tell: the webhook still hears of the group (announce records it otherwise).
  else ctx.background(recordGroupEvent(ctx.webhooks, created));
  return { $case: "groupCreateResp", value: { group: toInfo(group), invited } };
}

export async function groupInvite(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, uids }: RequestOf<"groupInviteReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  const wanted = checkUids(ctx, uids);
  if (wanted.length === 0) throw invalid("uids are required");
  if ((await actingRole(ctx, session, groupId)) < GROUP_ROLE.admin) {
    throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only admins and the owner invite");
  }
  await requireUsers(ctx, wanted);
  await refuseBlocked(ctx, actor, wanted, INVITE_BLOCKED);
  if (!session.privileged) await ctx.limits.groupInvites(actor, wanted.length);
  const { join, ask } = await joinOrAsk(ctx, session, wanted);
  const added =
    join.length === 0
      ? []
      : await storage(ctx, "group add", () => ctx.groups.addMembers(groupId, join, ctx.config.GROUP_MAX_MEMBERS));
  if (added.length > 0) ctx.background(announceToGroup(ctx, groupId, GroupEventKind.MEMBERS_ADDED, actor, added));
  const invited = ask.length === 0 ? [] : await invite(ctx, await requireGroup(ctx, groupId), actor, ask);
  return { $case: "groupInviteResp", value: { added, invited } };
}

/** The caller's open invitations, newest first, a page at a time. */
export async function groupInvitations(
  ctx: GroupsContext,
  session: LoggedInSession,
  { limit, beforeMs }: RequestOf<"groupInvitationsReq">,
): Reply {
  const size = pageSize(limit, ctx.config.GROUP_LIST_PAGE);
  const before = Number(beforeMs);
  if (!Number.isSafeInteger(before) || before < 0) throw invalid("beforeMs must be 0 or a time in ms");
  // One more than asked tells whether another page follows.
  const rows = await storage(ctx, "group invitations", () =>
    ctx.groups.invitationsOf(session.uid, openSince(ctx), before, size + 1),
  );
  const { page, more } = pageOf(rows, size);
  const names = await namesOf(ctx, [...new Set(page.map((r) => r.inviter))]);
  return {
    $case: "groupInvitationsResp",
    value: {
      invitations: page.map((r) => invitationOf(r.group, r.inviter, r.createdAt, names)),
      more,
    },
  };
}

/** Accepts (the caller joins and members are told) or declines an open invitation. */
export async function groupInvitationReply(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, accept }: RequestOf<"groupInvitationReplyReq">,
): Reply {
  const uid = session.uid;
  checkGroupId(groupId);
  const group = await storage(ctx, "group invitation reply", () =>
    ctx.groups.answerInvitation(groupId, uid, {
      accept,
      sinceMs: openSince(ctx),
      maxMembers: ctx.config.GROUP_MAX_MEMBERS,
    }),
  );
  if (!group) throw new AppError(ErrorCode.NOT_FOUND, `no open invitation into group ${groupId}`);
  if (!accept) return { $case: "groupInvitationReplyResp", value: {} };
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.MEMBERS_ADDED, uid, [uid]));
  return { $case: "groupInvitationReplyResp", value: { group: toInfo(group) } };
}

export async function groupLeave(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId }: RequestOf<"groupLeaveReq">,
): Reply {
  const uid = session.uid;
  checkGroupId(groupId);
  const role = await roleOf(ctx, groupId, uid);
  if (role === GROUP_ROLE.owner) {
    const group = await requireGroup(ctx, groupId);
    if (group.memberCount > 1) throw new AppError(ErrorCode.GROUP_OWNER_CANNOT_LEAVE);
  }
  await storage(ctx, "group leave", () => ctx.groups.removeMember(groupId, uid));
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.MEMBER_LEFT, uid, [uid]));
  return { $case: "groupLeaveResp", value: {} };
}

export async function groupKick(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, uid: member }: RequestOf<"groupKickReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  const uid = requireUid(member, "uid");
  if (uid === actor) throw invalid("use group_leave to leave");
  const role = await actingRole(ctx, session, groupId);
  if (role < GROUP_ROLE.admin) throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only admins and the owner kick");
  const target = await storage(ctx, "group role", () => ctx.groups.roleOf(groupId, uid));
  if (target === null) throw new AppError(ErrorCode.NOT_FOUND, `${uid} is not in group ${groupId}`);
  if (target >= role) throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only a higher role kicks");
  await storage(ctx, "group kick", () => ctx.groups.removeMember(groupId, uid));
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.MEMBER_KICKED, actor, [uid], [uid]));
  return { $case: "groupKickResp", value: {} };
}

export async function groupRename(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, name }: RequestOf<"groupRenameReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  checkName(ctx, name);
  if ((await roleOf(ctx, groupId, actor)) < GROUP_ROLE.admin) {
    throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only admins and the owner rename");
  }
  const group = await storage(ctx, "group rename", () => ctx.groups.rename(groupId, name.trim()));
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.RENAMED, actor, []));
  return { $case: "groupRenameResp", value: { group: toInfo(group) } };
}

export async function groupSetRole(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, uid: member, role }: RequestOf<"groupSetRoleReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  const uid = requireUid(member, "uid");
  if (role !== GROUP_ROLE.member && role !== GROUP_ROLE.admin && role !== GROUP_ROLE.owner) {
    throw invalid("role must be MEMBER, ADMIN or OWNER");
  }
  if ((await actingRole(ctx, session, groupId)) !== GROUP_ROLE.owner) {
    throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only the owner sets roles");
  }
  const target = await storage(ctx, "group role", () => ctx.groups.roleOf(groupId, uid));
  if (target === null) throw new AppError(ErrorCode.NOT_FOUND, `${uid} is not in group ${groupId}`);
  if (target === GROUP_ROLE.owner) throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "the owner's role is fixed");
  if (role === GROUP_ROLE.owner) {
    // A hand-over: uid becomes the owner and the caller an admin, in one transaction.
    const moved = await storage(ctx, "group transfer", () => ctx.groups.transferOwnership(groupId, actor, uid));
    // Someone else changed the group in between (the caller is no longer its owner, or uid left).
    if (!moved) throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "the group changed; ask again");
    ctx.background(
      (async () => {
        await announceToGroup(ctx, groupId, GroupEventKind.ROLE_CHANGED, actor, [uid], [], GROUP_ROLE.owner);
        await announceToGroup(ctx, groupId, GroupEventKind.ROLE_CHANGED, actor, [actor], [], GROUP_ROLE.admin);
      })(),
    );
    return { $case: "groupSetRoleResp", value: {} };
  }
  await storage(ctx, "group set role", () => ctx.groups.setRole(groupId, uid, role as GroupRoleValue));
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.ROLE_CHANGED, actor, [uid], [], role));
  return { $case: "groupSetRoleResp", value: {} };
}

export async function groupMembers(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, afterUid, limit }: RequestOf<"groupMembersReq">,
): Reply {
  checkGroupId(groupId);
  if (afterUid !== "0" && !isUid(afterUid)) throw invalid("afterUid must be 0 or a decimal user id");
  await roleOf(ctx, groupId, session.uid);
  const group = await requireGroup(ctx, groupId);
  const size = pageSize(limit, ctx.config.GROUP_MEMBERS_PAGE);
  // One more than asked tells whether another page follows.
  const rows = await storage(ctx, "group members", () => ctx.groups.members(groupId, afterUid, size + 1));
  const { page, more } = pageOf(rows, size);
  const now = Date.now();
  return {
    $case: "groupMembersResp",
    value: {
      group: toInfo(group),
      members: page.map((m) => ({
        uid: m.uid,
        role: m.role,
        joinedAtMs: String(m.joinedAt),
        // Only a mute still running: one that ended is no mute.
        mutedUntilMs: m.mutedUntil !== undefined && m.mutedUntil > now ? String(m.mutedUntil) : undefined,
      })),
      more,
    },
  };
}

export async function groupList(
  ctx: GroupsContext,
  session: LoggedInSession,
  { afterGroupId, limit }: RequestOf<"groupListReq">,
): Reply {
  if (afterGroupId !== "0" && !isUid(afterGroupId)) throw invalid("afterGroupId must be 0 or a decimal group id");
  const size = pageSize(limit, ctx.config.GROUP_LIST_PAGE);
  // One more than asked tells whether another page follows.
  const rows = await storage(ctx, "group list", () => ctx.groups.groupsOf(session.uid, afterGroupId, size + 1));
  const { page, more } = pageOf(rows, size);
  return { $case: "groupListResp", value: { groups: page.map(toInfo), more } };
}

/**
 * Stores the message once in the group's conversation, acks the sender once committed, then
 * fans it out: one member list read, one batched route lookup and one Deliver per chat node
 * with online members (deliver()). Offline members get it from their next sync.
 */
export async function groupSend(
  ctx: GroupsContext,
  session: LoggedInSession,
  request: RequestOf<"groupSendReq">,
  reqId: number,
): Reply {
  const sender = session.uid;
  checkGroupId(request.groupId);
  validateContent(request, ctx.config);
  // The upload was for the group's conversation (gate checked the sender is in it then).
  const prepared = await preparedMessage(ctx, sender, groupConvId(request.groupId), request);
  if (request.mentions) {
    const mentions = await checkedMentions(ctx, request.groupId, sender, request.mentions);
    prepared.extras = { ...prepared.extras, mentions };
  }
  return sendToGroup(ctx, session, request.groupId, prepared, { reqId, answer: "groupSendResp" });
}

/** Stores a checked message in a group once, answers once committed, then fans it out (group send and forward). */
export async function sendToGroup(
  ctx: GroupsContext,
  session: LoggedInSession,
  groupId: string,
  prepared: PreparedMessage,
  { reqId, answer }: Answer,
): Reply {
  const msgId = ctx.ids.next();
  // The before-send webhook (issue 18), when configured: may refuse or rewrite the message.
  await checkBeforeSend(ctx, groupConvId(groupId), session.uid, undefined, prepared, msgId);
  const { message, duplicate } = await storage(ctx, "group append", () =>
    ctx.groups.append({
      groupId,
      msgId,
      sender: session.uid,
      clientMsgId: prepared.clientMsgId,
      kind: prepared.kind,
      text: prepared.text,
      sentAtMs: Date.now(),
      file: prepared.file,
      extras: prepared.extras,
    }),
  );
  session.send({ reqId, body: { $case: answer, value: storedReply(message, duplicate) } });
  if (!duplicate) {
    ctx.background(fanOut(ctx, groupId, session, withQuote(message, prepared)));
  }
  return undefined;
}

/**
 * Mentions of a group message: at most MESSAGE_MENTIONS_MAX members (each checked against the
 * member list, one read), and "everyone" only from admins and the owner.
 */
async function checkedMentions(
  ctx: GroupsContext,
  groupId: string,
  sender: Uid,
  mentions: Mentions,
): Promise<StoredMentions | undefined> {
  const uids = [...new Set(mentions.uids.map((uid) => requireUid(uid, "mentions.uids")))];
  if (uids.length > ctx.config.MESSAGE_MENTIONS_MAX) {
    throw invalid(`at most ${ctx.config.MESSAGE_MENTIONS_MAX} mentions`);
  }
  if (mentions.all) {
    const role = await roleOf(ctx, groupId, sender);
    if (role === GROUP_ROLE.member)
      throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only admins mention everyone");
  }
  if (uids.length > 0) {
    const members = new Set(await storage(ctx, "group members", () => ctx.groups.memberUids(groupId)));
    const outsider = uids.find((uid) => !members.has(uid));
    if (outsider) throw invalid(`${outsider} is not a member of this group`);
  }
  return uids.length > 0 || mentions.all ? { uids, all: mentions.all } : undefined;
}

/** To every member but the sender, and to the sender's other devices. */
export async function fanOut(ctx: GroupsContext, groupId: string, from: Session, message: ChatMessage): Promise<void> {
  let members: Uid[];
  try {
    members = await ctx.groups.memberUids(groupId);
  } catch (err) {
    ctx.log.warn(sampled({ err, groupId }), "cannot read group members; they will sync");
    return;
  }
  await ctx.fanout.message(
    message,
    members.filter((uid) => uid !== from.uid),
    from,
  );
}

/**
 * A group event to every current member (plus `extra`, e.g. whoever was kicked, or a dissolved
 * group's former members); `more` adds the fields of some kinds (until_ms).
 */
export async function announceToGroup(
  ctx: GroupsContext,
  groupId: string,
  kind: GroupEventKind,
  actor: Uid,
  uids: Uid[],
  extra: Uid[] = [],
  role = 0,
  more: Partial<GroupEventPush> = {},
): Promise<void> {
  try {
    const store = ctx.groups;
    const [group, members] = await Promise.all([store.get(groupId), store.memberUids(groupId)]);
    if (!group) return;
    const to = [...new Set([...members, ...extra])].filter((uid) => uid !== actor);
    await announce(ctx, to, { kind, group: toInfo(group), actor, uids, role, ...more });
  } catch (err) {
    ctx.log.warn({ err, groupId }, "cannot announce a group change");
  }
}

/** A group event to whoever of `toUids` is online: one push per other node (the fan-out). */
async function announce(ctx: GroupsContext, toUids: Uid[], event: GroupEventPush): Promise<void> {
  // The same change as a webhook event (issue 18), when an endpoint listens to it.
  ctx.background(recordGroupEvent(ctx.webhooks, event));
  await ctx.fanout.notice(toUids, { reqId: 0, body: { $case: "groupEventPush", value: event } });
}

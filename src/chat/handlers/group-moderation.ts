import { GroupEventKind, type GroupJoinApplication } from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../errors.js";
import { requireUid } from "../../ids/identifiers.js";
import { GROUP_ROLE, type GroupJoinRequestRecord, type GroupRoleValue, type Uid } from "../../storage/ports.js";
import { fitsChars } from "../../text/chars.js";
import type { GroupsContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";
import { namesOf } from "./friends.js";
import { actingRole, announceToGroup, checkGroupId, requireGroup, roleOf, toInfo } from "./groups.js";

/**
 * Group moderation (issue 17): mutes, "only admins post", the announcement, dissolving, and
 * join approval. Admins and the owner moderate; the owner alone dissolves. The store refuses a
 * muted member's (or, while everyone is muted, a plain member's) post in the read it makes
 * anyway before storing it; here are the rules of who may change what.
 */

/** A mute "until unmuted": 9999-12-31T23:59:59.999Z, past any mute a client can ask for. */
export const MUTED_FOREVER_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** The caller's role, refused unless admin or owner. */
async function requireModerator(ctx: GroupsContext, groupId: string, uid: Uid, what: string): Promise<GroupRoleValue> {
  const role = await roleOf(ctx, groupId, uid);
  if (role < GROUP_ROLE.admin)
    throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, `only admins and the owner ${what}`);
  return role;
}

/** Join requests created before this are expired (GROUP_JOIN_REQUEST_TTL_SECONDS). */
function requestsSince(ctx: GroupsContext): number {
  return Date.now() - ctx.config.GROUP_JOIN_REQUEST_TTL_SECONDS * 1000;
}

/**
 * Mutes a member of a lower role (an admin mutes members, the owner admins and members) for
 * durationSeconds, until unmuted (forever), or unmutes (0). Members are told (MEMBER_MUTED).
 */
export async function groupMute(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, uid: member, durationSeconds, forever }: RequestOf<"groupMuteReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  const uid = requireUid(member, "uid");
  const max = ctx.config.GROUP_MUTE_MAX_SECONDS;
  if (!forever && !(durationSeconds >= 0 && durationSeconds <= max)) {
    throw invalid(`durationSeconds must be 0..${max} (or forever)`);
  }
  const role = await requireModerator(ctx, groupId, actor, "mute");
  const target = await storage(ctx, "group role", () => ctx.groups.roleOf(groupId, uid));
  if (target === null) throw new AppError(ErrorCode.NOT_FOUND, `${uid} is not in group ${groupId}`);
  if (target >= role) throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only a higher role mutes");
  const untilMs = forever ? MUTED_FOREVER_MS : durationSeconds === 0 ? 0 : Date.now() + durationSeconds * 1000;
  const muted = await storage(ctx, "group mute", () => ctx.groups.mute(groupId, uid, untilMs));
  // It left (or was kicked) in between.
  if (!muted) throw new AppError(ErrorCode.NOT_FOUND, `${uid} is not in group ${groupId}`);
  ctx.background(
    announceToGroup(ctx, groupId, GroupEventKind.MEMBER_MUTED, actor, [uid], [], 0, { untilMs: String(untilMs) }),
  );
  return { $case: "groupMuteResp", value: { untilMs: String(untilMs) } };
}

/** Only admins and the owner post (muted), or everyone again. Members are told (MUTED_ALL). */
export async function groupMuteAll(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, muted }: RequestOf<"groupMuteAllReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  await requireModerator(ctx, groupId, actor, "mute everyone");
  const group = await storage(ctx, "group mute all", () => ctx.groups.setMutedAll(groupId, muted));
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.MUTED_ALL, actor, []));
  return { $case: "groupMuteAllResp", value: {} };
}

/** Sets (or with "" removes) the announcement; members are told (ANNOUNCEMENT) and GroupInfo carries it. */
export async function groupAnnounce(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, text }: RequestOf<"groupAnnounceReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  const max = ctx.config.GROUP_ANNOUNCEMENT_MAX_CHARS;
  if (!fitsChars(text, max)) throw new AppError(ErrorCode.TEXT_TOO_LONG, `announcement of more than ${max} chars`);
  await requireModerator(ctx, groupId, actor, "announce");
  const group = await storage(ctx, "group announce", () => ctx.groups.announce(groupId, text, actor, Date.now()));
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.ANNOUNCEMENT, actor, []));
  return { $case: "groupAnnounceResp", value: { group: toInfo(group) } };
}

/**
 * The owner dissolves the group: its member rows, invitations and join requests go in one
 * transaction (its history too with GROUP_DISSOLVE_HISTORY=remove); the former members are told
 * (DISSOLVED).
 */
export async function groupDissolve(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId }: RequestOf<"groupDissolveReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  if ((await actingRole(ctx, session, groupId)) !== GROUP_ROLE.owner) {
    throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only the owner dissolves the group");
  }
  const removeHistory = ctx.config.GROUP_DISSOLVE_HISTORY === "remove";
  const former = await storage(ctx, "group dissolve", () => ctx.groups.dissolve(groupId, removeHistory));
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.DISSOLVED, actor, [], former));
  return { $case: "groupDissolveResp", value: {} };
}

/** Whether new members need an admin's approval (invitations still work). Members are told (JOIN_APPROVAL). */
export async function groupSetJoinApproval(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, required }: RequestOf<"groupSetJoinApprovalReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  await requireModerator(ctx, groupId, actor, "set join approval");
  const group = await storage(ctx, "group join approval", () => ctx.groups.setJoinApproval(groupId, required));
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.JOIN_APPROVAL, actor, []));
  return { $case: "groupSetJoinApprovalResp", value: {} };
}

/** A join request as admins see it, with the asking user's name. */
function applicationOf(r: GroupJoinRequestRecord, names: Map<Uid, string>): GroupJoinApplication {
  return {
    groupId: r.groupId,
    user: { uid: r.uid, name: names.get(r.uid) ?? "" },
    message: r.message,
    createdAtMs: String(r.createdAt),
  };
}

/**
 * Asks to join a group that requires approval (any user; again renews the request); its
 * admins and owner get a GroupJoinRequestPush. A group that does not require approval takes
 * no requests (INVALID_ARGUMENT): its members invite.
 */
export async function groupJoin(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, message }: RequestOf<"groupJoinReq">,
): Reply {
  const me = session.uid;
  checkGroupId(groupId);
  const max = ctx.config.GROUP_JOIN_MESSAGE_MAX_CHARS;
  if (!fitsChars(message, max)) throw invalid(`message must be at most ${max} characters`);
  const group = await requireGroup(ctx, groupId);
  if (group.dissolved) throw new AppError(ErrorCode.GROUP_DISSOLVED, "the group was dissolved");
  if (!group.joinApproval) throw invalid("this group takes no join requests: ask a member for an invitation");
  const blocks = ctx.blocks;
  if (blocks) {
    const blocked = await storage(ctx, "block check", () => blocks.blockedAmong(group.owner, [me]));
    if (blocked.has(me)) throw new AppError(ErrorCode.BLOCKED, "the group's owner does not accept this");
  }
  const request: GroupJoinRequestRecord = { groupId, uid: me, message, createdAt: Date.now() };
  await storage(ctx, "group join request", () => ctx.groups.requestJoin(request));
  ctx.background(
    (async () => {
      try {
        const [managers, names] = await Promise.all([ctx.groups.managers(groupId), namesOf(ctx, [me])]);
        const application = applicationOf(request, names);
        await ctx.fanout.notice(managers, {
          reqId: 0,
          body: { $case: "groupJoinRequestPush", value: { application } },
        });
      } catch (err) {
        ctx.log.warn({ err, groupId }, "cannot tell admins of a join request; they will list it");
      }
    })(),
  );
  return { $case: "groupJoinResp", value: {} };
}

/** The group's open join requests, newest first (at most GROUP_LIST_PAGE), for admins and the owner. */
export async function groupJoinRequests(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId }: RequestOf<"groupJoinRequestsReq">,
): Reply {
  checkGroupId(groupId);
  await requireModerator(ctx, groupId, session.uid, "see join requests");
  const rows = await storage(ctx, "group join requests", () =>
    ctx.groups.joinRequests(groupId, requestsSince(ctx), ctx.config.GROUP_LIST_PAGE),
  );
  const names = await namesOf(ctx, [...new Set(rows.map((r) => r.uid))]);
  return { $case: "groupJoinRequestsResp", value: { requests: rows.map((r) => applicationOf(r, names)) } };
}

/** Admits (the user joins; members are told with MEMBERS_ADDED) or declines an open join request. */
export async function groupJoinReply(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, uid: asking, accept }: RequestOf<"groupJoinReplyReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  const uid = requireUid(asking, "uid");
  await requireModerator(ctx, groupId, actor, "answer join requests");
  const answered = await storage(ctx, "group join reply", () =>
    ctx.groups.answerJoin(groupId, uid, {
      accept,
      sinceMs: requestsSince(ctx),
      maxMembers: ctx.config.GROUP_MAX_MEMBERS,
    }),
  );
  if (!answered) throw new AppError(ErrorCode.NOT_FOUND, `no open join request from ${uid}`);
  if (accept) ctx.background(announceToGroup(ctx, groupId, GroupEventKind.MEMBERS_ADDED, actor, [uid]));
  return { $case: "groupJoinReplyResp", value: {} };
}

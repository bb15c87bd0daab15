import type { Envelope, FriendApplication, UserInfo } from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, isUid, requireChars, requireUid } from "../../ids/identifiers.js";
import { sampled } from "../../log/logger.js";
import type { FriendApplicationRecord, Uid, UserRecord } from "../../storage/ports.js";
import { recordFriendEvent } from "../../webhooks/events.js";
import type { FriendsContext, HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageSize, storage } from "./context.js";

/** What others may see of a user: never the email or the password hash. */
function info(user: Pick<UserRecord, "uid" | "name">): UserInfo {
  return { uid: user.uid, name: user.name };
}

function push(body: NonNullable<Envelope["body"]>): Envelope {
  return { reqId: 0, body };
}

/** Names of uids (one read per uid on its shard); a uid without a user keeps an empty name. */
export async function namesOf(ctx: HandlerContext, uids: Uid[]): Promise<Map<Uid, string>> {
  const users = await storage(ctx, "user lookup", () => Promise.all(uids.map((uid) => ctx.users.byUid(uid))));
  return new Map(users.flatMap((u) => (u ? [[u.uid, u.name] as const] : [])));
}

function application(a: FriendApplicationRecord, names: Map<Uid, string>): FriendApplication {
  return {
    from: { uid: a.fromUid, name: names.get(a.fromUid) ?? "" },
    toUid: a.toUid,
    message: a.message,
    createdAtMs: String(a.createdAtMs),
  };
}

/** An exact uid (all digits), an exact email (with "@"), else a name prefix. */
export async function searchUsers(
  ctx: HandlerContext,
  _session: LoggedInSession,
  request: RequestOf<"searchUsersReq">,
): Reply {
  const query = request.query.trim();
  if (query === "") throw invalid("query is required");
  requireChars(query, COLUMN_CHARS.email, "query");
  const limit = pageSize(request.limit, ctx.config.CHAT_SEARCH_MAX_RESULTS);
  const found = await storage(ctx, "user search", async () => {
    if (query.includes("@")) {
      const user = await ctx.users.byEmail(query);
      return user ? [user] : [];
    }
    const byUid = isUid(query) ? await ctx.users.byUid(query) : null;
    const byName = await ctx.users.searchByNamePrefix(query, limit);
    return [...(byUid ? [byUid] : []), ...byName.filter((u) => u.uid !== byUid?.uid)].slice(0, limit);
  });
  return { $case: "searchUsersResp", value: { users: found.map(info) } };
}

/**
 * Records an application and pushes it to the recipient's sessions on whatever node they are;
 * an offline recipient lists it after login (FriendApplicationsRequest). BLOCKED when either of
 * the two blocked the other.
 */
export async function friendApply(
  ctx: FriendsContext,
  session: LoggedInSession,
  request: RequestOf<"friendApplyReq">,
): Reply {
  const me = session.uid;
  const friends = ctx.friends;
  const to = requireUid(request.toUid, "toUid");
  if (to === me) throw invalid("cannot befriend yourself");
  const max = ctx.config.FRIEND_APPLY_MAX_CHARS;
  if ([...request.message].length > max) throw invalid(`message must be at most ${max} characters`);
  const blocks = ctx.blocks;
  const [self, target, already, count, blocked] = await storage(ctx, "friend apply", () =>
    Promise.all([
      ctx.users.byUid(me),
      ctx.users.byUid(to),
      friends.areFriends(me, to),
      friends.friendCount(me),
      // Issue 17: either one blocked the other (one read, beside the others).
      blocks ? blocks.blockedAmong(me, [to]) : new Set<Uid>(),
    ]),
  );
  if (!target || !self) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${to}`);
  if (blocked.has(to)) throw new AppError(ErrorCode.BLOCKED);
  if (already) throw new AppError(ErrorCode.ALREADY_FRIENDS);
  if (count >= ctx.config.FRIENDS_MAX) throw new AppError(ErrorCode.FRIEND_LIMIT, `${count} friends already`);
  await ctx.limits.friendApply(me);
  const record = { fromUid: me, toUid: to, message: request.message, createdAtMs: Date.now() };
  await storage(ctx, "friend apply", () => friends.apply(record));
  ctx.background(recordFriendEvent(ctx.webhooks, "friend.applied", me, to, request.message));
  const names = new Map([[me, self.name]]);
  ctx.background(
    ctx.fanout.notice(
      [to],
      push({ $case: "friendApplicationPush", value: { application: application(record, names) } }),
    ),
  );
  return { $case: "friendApplyResp", value: {} };
}

/**
 * Accepts (both friendship rows, then the application is dropped, so a failure half-way is
 * completed by a retry) or declines; the applicant is told on whatever node it is.
 */
export async function friendReply(
  ctx: FriendsContext,
  session: LoggedInSession,
  request: RequestOf<"friendReplyReq">,
): Reply {
  const me = session.uid;
  const friends = ctx.friends;
  const from = requireUid(request.fromUid, "fromUid");
  const pending = await storage(ctx, "friend application", () => friends.application(from, me));
  if (!pending) throw new AppError(ErrorCode.APPLICATION_NOT_FOUND, `no application from ${from}`);
  if (request.accept) {
    const [mine, theirs] = await storage(ctx, "friend count", () =>
      Promise.all([friends.friendCount(me), friends.friendCount(from)]),
    );
    if (Math.max(mine, theirs) >= ctx.config.FRIENDS_MAX) throw new AppError(ErrorCode.FRIEND_LIMIT);
    await storage(ctx, "befriend", () => friends.befriend(me, from, Date.now()));
    // Crossed applications end together: the other direction would otherwise stay pending.
    await storage(ctx, "friend application", () => friends.dropApplication(me, from));
  }
  await storage(ctx, "friend application", () => friends.dropApplication(from, me));
  ctx.background(recordFriendEvent(ctx.webhooks, request.accept ? "friend.accepted" : "friend.declined", me, from));
  const self = await storage(ctx, "user lookup", () => ctx.users.byUid(me));
  ctx.background(
    ctx.fanout.notice(
      [from],
      push({
        $case: "friendReplyPush",
        value: { user: info(self ?? { uid: me, name: "" }), accepted: request.accept },
      }),
    ),
  );
  return { $case: "friendReplyResp", value: {} };
}

/** Friends with names and presence (online: a session route of any device kind). */
export async function friendList(ctx: FriendsContext, session: LoggedInSession): Reply {
  const me = session.uid;
  const records = await storage(ctx, "friend list", () => ctx.friends.friends(me, ctx.config.FRIENDS_MAX));
  const uids = records.map((r) => r.uid);
  const [names, online] = await Promise.all([
    namesOf(ctx, uids),
    ctx.routes.lookup(uids).catch((err: unknown) => {
      // Presence is a hint: without Redis the list still answers, everyone shown offline.
      ctx.log.warn(sampled({ err }), "presence lookup failed");
      return new Map();
    }),
  ]);
  return {
    $case: "friendListResp",
    value: {
      friends: records.map((r) => ({
        user: { uid: r.uid, name: names.get(r.uid) ?? "" },
        sinceMs: String(r.sinceMs),
        online: online.has(r.uid),
      })),
    },
  };
}

export async function friendRemove(
  ctx: FriendsContext,
  session: LoggedInSession,
  request: RequestOf<"friendRemoveReq">,
): Reply {
  const me = session.uid;
  const them = requireUid(request.uid, "uid");
  const removed = await storage(ctx, "unfriend", () => ctx.friends.unfriend(me, them));
  if (!removed) throw new AppError(ErrorCode.NOT_FRIENDS);
  ctx.background(recordFriendEvent(ctx.webhooks, "friend.removed", me, them));
  ctx.background(ctx.fanout.notice([them], push({ $case: "friendRemovedPush", value: { uid: me } })));
  return { $case: "friendRemoveResp", value: {} };
}

/** Applications waiting for this user's answer, newest first: what a client asks after login. */
export async function friendApplications(ctx: FriendsContext, session: LoggedInSession): Reply {
  const me = session.uid;
  const records = await storage(ctx, "friend applications", () =>
    ctx.friends.incoming(me, ctx.config.FRIEND_APPLICATIONS_MAX),
  );
  const names = await namesOf(
    ctx,
    records.map((r) => r.fromUid),
  );
  return {
    $case: "friendApplicationsResp",
    value: { applications: records.map((r) => application(r, names)) },
  };
}

import { AppError, ErrorCode } from "../../errors.js";
import { requireUid } from "../../ids/identifiers.js";
import type { Uid } from "../../storage/ports.js";
import type { BlocksContext, HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";
import { namesOf } from "./friends.js";

/**
 * Blocks a user (issue 17). The block is the store's (a row listing it, a mark on the pair's
 * conversation row that every 1:1 append reads); here, a friendship between them ends and
 * pending friend applications either way are dropped. The blocked user is not told: nothing is
 * pushed to it, and its presence pushes stop with the friendship.
 */
export async function block(ctx: BlocksContext, session: LoggedInSession, request: RequestOf<"blockReq">): Reply {
  const me = session.uid;
  const them = requireUid(request.uid, "uid");
  if (them === me) throw invalid("cannot block yourself");
  const blocks = ctx.blocks;
  const [existing, count] = await storage(ctx, "block", () =>
    Promise.all([ctx.knownUsers.existing([them]), blocks.blockCount(me)]),
  );
  if (!existing.has(them)) throw new AppError(ErrorCode.PEER_NOT_FOUND, `no user ${them}`);
  const max = ctx.config.BLOCKS_MAX;
  // At the limit, blocking someone already blocked again (a retry) still goes through.
  if (count >= max) {
    const listed = await storage(ctx, "block list", () => blocks.blocked(me, count));
    if (!listed.some((b) => b.uid === them)) {
      throw new AppError(ErrorCode.FRIEND_LIMIT, `${count} users blocked already (at most ${max})`);
    }
  }
  await storage(ctx, "block", () => blocks.block(me, them, Date.now()));
  await endFriendship(ctx, me, them);
  return { $case: "blockResp", value: {} };
}

/**
 * The friendship and both pending applications, after the block (each call idempotent, so a
 * retried block completes what a failed one left). Nobody is pushed anything.
 */
async function endFriendship(ctx: HandlerContext, me: Uid, them: Uid): Promise<void> {
  const friends = ctx.friends;
  if (!friends) return;
  await storage(ctx, "unfriend", () =>
    Promise.all([friends.unfriend(me, them), friends.dropApplication(me, them), friends.dropApplication(them, me)]),
  );
}

/** Ends the caller's block of a user (the other's block of the caller, if any, stays). Idempotent. */
export async function unblock(ctx: BlocksContext, session: LoggedInSession, request: RequestOf<"unblockReq">): Reply {
  const them = requireUid(request.uid, "uid");
  if (them === session.uid) throw invalid("cannot unblock yourself");
  await storage(ctx, "unblock", () => ctx.blocks.unblock(session.uid, them));
  return { $case: "unblockResp", value: {} };
}

/** The users the caller blocked, the most recent first, with their names. */
export async function blockList(ctx: BlocksContext, session: LoggedInSession): Reply {
  const records = await storage(ctx, "block list", () => ctx.blocks.blocked(session.uid, ctx.config.BLOCKS_MAX));
  const names = await namesOf(
    ctx,
    records.map((r) => r.uid),
  );
  return {
    $case: "blockListResp",
    value: {
      users: records.map((r) => ({ user: { uid: r.uid, name: names.get(r.uid) ?? "" }, sinceMs: String(r.sinceMs) })),
    },
  };
}

/**
 * BLOCKED when one of `uids` blocked `uid` or `uid` blocked one of them (one read per shard
 * holding their pairs; nothing without a block store). The error names nobody: who blocked
 * whom is not told.
 */
export async function refuseBlocked(ctx: HandlerContext, uid: Uid, uids: Uid[], what: string): Promise<void> {
  const blocks = ctx.blocks;
  if (!blocks || uids.length === 0) return;
  const blocked = await storage(ctx, "block check", () => blocks.blockedAmong(uid, uids));
  if (blocked.size > 0) throw new AppError(ErrorCode.BLOCKED, what);
}

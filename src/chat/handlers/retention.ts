import { GroupEventKind } from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../../errors.js";
import { GROUP_ROLE } from "../../storage/ports.js";
import { MAX_TTL_SECONDS } from "../../storage/retention/group-ttl.js";
import type { GroupsContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";
import { announceToGroup, checkGroupId, roleOf } from "./groups.js";

/**
 * Retention (issue 17): a group's own message TTL. Admins and the owner set it; 0 goes back to
 * the deployment's MESSAGE_TTL_SECONDS. The purge (src/storage/retention/purger.ts) reads it;
 * members are told (RETENTION), and GroupInfo carries it from then on. One read of the caller's
 * role and one write of the group row.
 */
export async function groupSetRetention(
  ctx: GroupsContext,
  session: LoggedInSession,
  { groupId, ttlSeconds }: RequestOf<"groupSetRetentionReq">,
): Reply {
  const actor = session.uid;
  checkGroupId(groupId);
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 0 || ttlSeconds > MAX_TTL_SECONDS) {
    throw invalid(`ttlSeconds must be 0..${MAX_TTL_SECONDS}`);
  }
  if ((await roleOf(ctx, groupId, actor)) < GROUP_ROLE.admin) {
    throw new AppError(ErrorCode.GROUP_PERMISSION_DENIED, "only admins and the owner set the group's retention");
  }
  const group = await storage(ctx, "group retention", () => ctx.groups.setRetention(groupId, ttlSeconds));
  if (!group) throw new AppError(ErrorCode.GROUP_NOT_FOUND);
  ctx.background(announceToGroup(ctx, groupId, GroupEventKind.RETENTION, actor, []));
  return { $case: "groupSetRetentionResp", value: {} };
}

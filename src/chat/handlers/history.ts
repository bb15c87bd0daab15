import { AppError, ErrorCode } from "../../errors.js";
import { isGroupConvId } from "../../ids/identifiers.js";
import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageSize, storage } from "./context.js";

/** A page of one conversation the user is in (NOT_PARTICIPANT otherwise, from the store). */
export async function history(ctx: HandlerContext, session: LoggedInSession, request: RequestOf<"historyReq">): Reply {
  const uid = session.uid;
  if (!request.convId) throw invalid("convId is required");
  const messages = await storage(ctx, "history", () =>
    ctx.messages.history(uid, request.convId, {
      afterSeq: request.afterSeq,
      beforeSeq: request.beforeSeq,
      limit: pageSize(request.limit, ctx.config.CHAT_SYNC_BATCH),
    }),
  ).catch((err: unknown) => {
    // Only members read a group: the group's own code, so clients can tell a kick apart.
    if (isGroupConvId(request.convId) && err instanceof AppError && err.code === ErrorCode.NOT_PARTICIPANT) {
      throw new AppError(ErrorCode.NOT_GROUP_MEMBER, "not a member of this group");
    }
    throw err;
  });
  return { $case: "historyResp", value: { messages } };
}

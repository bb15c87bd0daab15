import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageSize, storage } from "./context.js";
import { asMemberError } from "./send.js";

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
  ).catch(asMemberError(request.convId));
  return { $case: "historyResp", value: { messages } };
}

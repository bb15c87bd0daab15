import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, pageSize, storage } from "./context.js";
import { asMemberError } from "./send.js";

/**
 * A page of one conversation the user is in (NOT_PARTICIPANT otherwise, from the store), with
 * the first seq it may read there (after what it cleared for itself).
 */
export async function history(ctx: HandlerContext, session: LoggedInSession, request: RequestOf<"historyReq">): Reply {
  const uid = session.uid;
  if (!request.convId) throw invalid("convId is required");
  const { messages, firstSeq } = await storage(ctx, "history", () =>
    ctx.messages.historyPage(uid, request.convId, {
      afterSeq: request.afterSeq,
      beforeSeq: request.beforeSeq,
      limit: pageSize(request.limit, ctx.config.CHAT_SYNC_BATCH),
    }),
  ).catch(asMemberError(request.convId));
  return { $case: "historyResp", value: { messages, firstSeq } };
}

import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { pageSize, storage } from "./context.js";

/** Messages the user has not acked yet; the client acks them, then syncs again while `more`. */
export async function sync(ctx: HandlerContext, session: LoggedInSession, { limit }: RequestOf<"syncReq">): Reply {
  const uid = session.uid;
  const page = await storage(ctx, "sync", async () => {
    // What this user acked here and the node still holds must not come back.
    await ctx.delivered.flushUser(uid);
    return ctx.messages.pending(uid, pageSize(limit, ctx.config.CHAT_SYNC_BATCH));
  });
  return { $case: "syncResp", value: { messages: page.messages, more: page.more } };
}

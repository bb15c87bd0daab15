import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { invalid, storage } from "./context.js";

/** Delivery acks: the client has everything up to seq in each conversation. */
export async function ack(
  ctx: HandlerContext,
  session: LoggedInSession,
  { cursors }: RequestOf<"ackReq">,
  reqId: number,
): Reply {
  const uid = session.uid;
  if (cursors.length === 0) throw invalid("cursors are required");
  // One cursor per conversation; a sync page never spans more conversations than messages.
  if (cursors.length > ctx.config.CHAT_SYNC_BATCH) throw invalid(`at most ${ctx.config.CHAT_SYNC_BATCH} cursors`);
  for (const cursor of cursors) {
    if (!cursor.convId || cursor.seq < 1) throw invalid("each cursor needs a convId and a seq >= 1");
  }
  // Held on the node and written in batches (CHAT_ACK_FLUSH_MS): a crash can only repeat a
  // delivery, which the client drops by seq.
  await storage(ctx, "ack", () =>
    ctx.delivered.ack(
      uid,
      cursors.map(({ convId, seq }) => ({ convId, seq })),
    ),
  );
  ctx.unacked.acked(session, cursors);
  // req_id 0: the client asked for no answer (see AckRequest).
  return reqId === 0 ? undefined : { $case: "ackResp", value: {} };
}

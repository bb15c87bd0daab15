import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, requireChars } from "../../ids/identifiers.js";
import type { Uid } from "../../storage/ports.js";
import type { HandlerContext, LoggedInSession, Reply, RequestOf } from "./context.js";
import { storage } from "./context.js";
import { peerOf } from "./conversations.js";
import { participantsOf } from "./participants.js";
import { asMemberError, requireRecipient } from "./send.js";

/**
 * "Typing": pushed to the conversation's other participants through the fan-out, never stored.
 * A client shows it for TYPING_TTL_MS and renews it by typing on, so no "stopped" frame exists
 * and a lost push costs nothing. One push per TYPING_MIN_INTERVAL_MS per session and
 * conversation; more are dropped (answered, not pushed), since the indicator is on anyway.
 */
export async function typing(ctx: HandlerContext, session: LoggedInSession, request: RequestOf<"typingReq">): Reply {
  const convId = requireChars(request.convId, COLUMN_CHARS.convId, "convId");
  const me = session.uid;
  if (!ctx.limits.typing(session, convId)) return { $case: "typingResp", value: {} };
  await requireParticipant(ctx, convId, me);
  const others = await storage(ctx, "participants", () => participantsOf(ctx, convId, me));
  ctx.background(
    ctx.fanout.notice(others, {
      reqId: 0,
      body: { $case: "typingPush", value: { convId, uid: me, expiresInMs: ctx.config.TYPING_TTL_MS } },
    }),
  );
  return { $case: "typingResp", value: {} };
}

/**
 * The caller may type here: a member of the group, or one side of a 1:1 conversation with
 * someone it may message (before their first message there is no member row yet), neither of
 * them having blocked the other (BLOCKED).
 */
async function requireParticipant(ctx: HandlerContext, convId: string, me: Uid): Promise<void> {
  const peer = peerOf(convId, me);
  if (peer !== undefined) return requireRecipient(ctx, me, peer, { blocks: true });
  const member = await storage(ctx, "membership", () => ctx.messages.isMember(convId, me));
  if (!member) asMemberError(convId)(new AppError(ErrorCode.NOT_PARTICIPANT, "not in this conversation"));
}

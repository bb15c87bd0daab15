import { ErrorCode } from "../../errors.js";
import { sampled } from "../../log/logger.js";
import { kickSession, type Session } from "../session.js";
import type { HandlerContext, LoggedInSession, Reply } from "./context.js";

/**
 * Activity is refreshed by any frame; a ping also renews the session's Redis route, at most
 * once per CHAT_ROUTE_RENEW_MIN_MS however fast a client pings.
 */
export async function heartbeat(ctx: HandlerContext, session: LoggedInSession): Reply {
  const now = Date.now();
  if (ctx.routes.refresh && now - session.routeRenewedAtMs >= ctx.config.CHAT_ROUTE_RENEW_MIN_MS) {
    session.routeRenewedAtMs = now;
    ctx.background(renewRoute(ctx, session));
  }
  return { $case: "heartbeatResp", value: { serverTimeMs: String(Date.now()) } };
}

async function renewRoute(ctx: HandlerContext, session: Session): Promise<void> {
  const uid = session.uid;
  if (uid === undefined || session.closed || !ctx.routes.refresh) return;
  try {
    const kept = await ctx.routes.refresh(uid, { nodeId: ctx.nodeId, sessionId: session.id, device: session.device });
    // Closed meanwhile: its unbind may have run before the refresh rewrote the route.
    if (session.closed) await ctx.routes.unbind(uid, session.id, session.device);
    else if (!kept) kickSession(session, ErrorCode.KICKED, "logged in elsewhere");
  } catch (err) {
    ctx.log.warn(sampled({ err, uid }), "cannot renew the session route");
  }
}

import { AppError, ErrorCode, errorName } from "../../errors.js";
import type { SessionRoute } from "../../routing/ports.js";
import { kickSession, type Session } from "../session.js";
import { FatalSessionError, type Handler, type HandlerContext, invalid, isUid } from "./context.js";

const LOGGED_IN_ELSEWHERE = "logged in elsewhere";

/**
 * The first frame: checks the token with status, checks that the ring puts this user here
 * (otherwise WRONG_NODE with where to go), binds the session and its Redis route, and kicks
 * the user's older session wherever it is.
 */
export const login: Handler<"loginReq"> = async (ctx, session, { uid, token }) => {
  // A session's frames are handled one at a time, so no second login can race this one.
  if (session.uid !== undefined) throw new AppError(ErrorCode.ALREADY_LOGGED_IN);
  if (!isUid(uid)) throw invalid("uid must be a decimal user id");
  if (!token) throw invalid("token is required");
  await checkAdmission(ctx, uid, token);
  if (session.closed) return undefined;
  await bind(ctx, session, uid);
  if (session.closed) return undefined;
  return {
    $case: "loginResp",
    value: {
      uid,
      nodeId: ctx.nodeId,
      heartbeatIntervalMs: ctx.config.CHAT_CLIENT_HEARTBEAT_MS,
      idleTimeoutMs: ctx.config.CHAT_IDLE_TIMEOUT_MS,
    },
  };
};

/** A valid token, and the ring puts the user on this node. A refusal ends the session. */
async function checkAdmission(ctx: HandlerContext, uid: string, token: string): Promise<void> {
  const checked = await ctx.status.checkToken({ uid, token });
  if (checked.error) throw new FatalSessionError(checked.error);
  const owner = await ctx.status.getChatNode({ uid });
  if (owner.error) throw new FatalSessionError(owner.error);
  if (owner.node && owner.node.nodeId !== ctx.nodeId) {
    const { nodeId, host, tcpPort, wsUrl } = owner.node;
    throw new FatalSessionError(ErrorCode.WRONG_NODE, `user ${uid} belongs to ${nodeId}`, {
      nodeId,
      host,
      tcpPort,
      wsUrl,
    });
  }
}

async function bind(ctx: HandlerContext, session: Session, uid: string): Promise<void> {
  // Bound locally first, so that a close from here on unbinds the route too.
  const olderHere = ctx.sessions.bindUid(session, uid);
  if (olderHere) kickSession(olderHere, ErrorCode.KICKED, LOGGED_IN_ELSEWHERE);
  let replaced: SessionRoute | null;
  try {
    replaced = await ctx.routes.bind(uid, { nodeId: ctx.nodeId, sessionId: session.id });
  } catch (err) {
    ctx.sessions.unbindUid(session);
    ctx.log.error({ err, uid }, "cannot write the session route");
    throw new AppError(ErrorCode.UNAVAILABLE, "session routing is unavailable");
  }
  if (session.closed) {
    // The close hook may have run before the route was written: undo it here.
    await ctx.routes.unbind(uid, session.id);
    return;
  }
  if (replaced && replaced.sessionId !== session.id && replaced.sessionId !== olderHere?.id) {
    ctx.background(kickReplaced(ctx, uid, replaced));
  }
}

async function kickReplaced(ctx: HandlerContext, uid: string, replaced: SessionRoute): Promise<void> {
  if (replaced.nodeId === ctx.nodeId) {
    const older = ctx.sessions.get(replaced.sessionId);
    if (older) kickSession(older, ErrorCode.KICKED, LOGGED_IN_ELSEWHERE);
    return;
  }
  try {
    const peer = await ctx.peers.get(replaced.nodeId);
    if (!peer) return;
    const reply = await peer.kick({ uid, sessionId: replaced.sessionId, reason: ErrorCode.KICKED });
    if (reply.error) ctx.log.warn({ uid, nodeId: replaced.nodeId, error: errorName(reply.error) }, "kick refused");
  } catch (err) {
    // The older session's node is down or slow: that session ends with it or by idle timeout.
    ctx.log.warn({ err, uid, nodeId: replaced.nodeId }, "cannot kick the older session");
  }
}

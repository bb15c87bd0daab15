import { DeviceKind } from "../../../packages/protocol/src/wire.js";
import { AppError, ErrorCode, errorName } from "../../errors.js";
import { isUid, type Uid } from "../../ids/identifiers.js";
import { sampled } from "../../log/logger.js";
import type { DeviceName, SessionRoute } from "../../routing/ports.js";
import { announcePresence } from "../presence.js";
import { kickSession, type Session } from "../session.js";
import type { HandlerContext, Reply, RequestOf } from "./context.js";
import { FatalSessionError } from "./context.js";

const LOGGED_IN_ELSEWHERE = "logged in elsewhere";

/**
 * The first frame: checks the token with status, checks that the ring puts this user here (this
 * node's ring first, status when that says elsewhere; otherwise WRONG_NODE with where to go),
 * binds the session and its Redis route, and kicks the user's older session wherever it is.
 * Every refusal closes the connection (a socket that keeps trying logins holds a slot it has no
 * right to).
 */
export async function login(
  ctx: HandlerContext,
  session: Session,
  { uid, token, device: kind }: RequestOf<"loginReq">,
): Reply {
  // A session's frames are handled one at a time, so no second login can race this one.
  if (session.uid !== undefined) throw new FatalSessionError(ErrorCode.ALREADY_LOGGED_IN);
  if (!isUid(uid)) throw new FatalSessionError(ErrorCode.INVALID_ARGUMENT, "uid must be a decimal user id");
  if (!token) throw new FatalSessionError(ErrorCode.INVALID_ARGUMENT, "token is required");
  const device = deviceName(kind, session);
  if (!ctx.limits.admitLogin()) {
    throw new FatalSessionError(
      ErrorCode.RATE_LIMITED,
      "this node is admitting logins as fast as CHAT_LOGINS_PER_SECOND allows: retry after a pause",
    );
  }
  const tokenExpiresAtMs = await checkAdmission(ctx, uid, token, device);
  if (session.closed) return undefined;
  session.tokenExpiresAtMs = tokenExpiresAtMs;
  const replaced = await bind(ctx, session, uid, device);
  if (session.closed) return undefined;
  // A new device (not one replacing its own kind) may be the user's first: friends are told.
  if (!replaced) ctx.background(announcePresence(ctx, uid, true));
  // A reconnect gets what its earlier session left unacked here, right after this reply.
  ctx.unacked.resume(session);
  return {
    $case: "loginResp",
    value: {
      uid,
      nodeId: ctx.nodeId,
      heartbeatIntervalMs: ctx.config.CHAT_CLIENT_HEARTBEAT_MS,
      idleTimeoutMs: ctx.config.CHAT_IDLE_TIMEOUT_MS,
      device: DEVICE_KINDS[device],
    },
  };
}

/**
 * A valid token, and the ring puts the user on this node; answers when the token expires. A
 * refusal ends the session.
 */
async function checkAdmission(ctx: HandlerContext, uid: Uid, token: string, device: DeviceName): Promise<number> {
  const checked = await ctx.status.checkToken({ uid, token, device });
  if (checked.error) throw new FatalSessionError(checked.error);
  // The ring this node holds (RingWatch) answers for the users it puts here, which is every
  // login but a stray one: a reconnect burst then costs status one call per login, not two.
  // Only a user it puts elsewhere, or a ring not seen yet, asks status, whose answer is the one
  // a redirect names. A login admitted just before this node saw a newer ring is moved by the
  // next ring check, like a session that was here before the change.
  if (ctx.ring.ownerOf(uid) === ctx.nodeId) return Number(checked.expiresAtMs);
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
  return Number(checked.expiresAtMs);
}

const DEVICE_KINDS: Record<DeviceName, DeviceKind> = {
  desktop: DeviceKind.DESKTOP,
  web: DeviceKind.WEB,
  mobile: DeviceKind.MOBILE,
};

/** The claimed device kind; unspecified: a desktop client over TCP, a browser over WebSocket. */
function deviceName(kind: DeviceKind | undefined, session: Session): DeviceName {
  switch (kind) {
    case DeviceKind.DESKTOP:
      return "desktop";
    case DeviceKind.WEB:
      return "web";
    case DeviceKind.MOBILE:
      return "mobile";
    case undefined:
    case DeviceKind.UNSPECIFIED:
      return session.transport === "ws" ? "web" : "desktop";
    default:
      throw new FatalSessionError(ErrorCode.INVALID_ARGUMENT, `unknown device kind ${kind}`);
  }
}

/**
 * One session per uid and device kind: the same kind logging in again kicks the older session
 * (here or on another node), another kind stays beside it.
 */
async function bind(ctx: HandlerContext, session: Session, uid: Uid, device: DeviceName): Promise<SessionRoute | null> {
  // Bound locally first, so that a close from here on unbinds the route too.
  const olderHere = ctx.sessions.bindUid(session, uid, device);
  if (olderHere) kickSession(olderHere, ErrorCode.KICKED, LOGGED_IN_ELSEWHERE);
  let replaced: SessionRoute | null;
  try {
    replaced = await ctx.routes.bind(uid, { nodeId: ctx.nodeId, sessionId: session.id, device });
    session.routeRenewedAtMs = Date.now();
  } catch (err) {
    ctx.sessions.unbindUid(session);
    ctx.log.error(sampled({ err, uid }), "cannot write the session route");
    throw new AppError(ErrorCode.UNAVAILABLE, "session routing is unavailable");
  }
  if (session.closed) {
    // The close hook may have run before the route was written: undo it here.
    await ctx.routes.unbind(uid, session.id, device);
    return replaced;
  }
  if (replaced && replaced.sessionId !== session.id && replaced.sessionId !== olderHere?.id) {
    ctx.background(kickReplaced(ctx, uid, replaced));
  }
  return replaced;
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
    const reply = await peer.kick({ uid, sessionId: replaced.sessionId, reason: ErrorCode.KICKED, device: "" });
    if (reply.error)
      ctx.log.warn(sampled({ uid, nodeId: replaced.nodeId, error: errorName(reply.error) }), "kick refused");
  } catch (err) {
    // The older session's node is down or slow: that session ends with it or by idle timeout.
    ctx.log.warn(sampled({ err, uid, nodeId: replaced.nodeId }), "cannot kick the older session");
  }
}

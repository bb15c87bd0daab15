import { ErrorCode } from "../errors.js";
import type { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import type { Api } from "../grpc/api.js";
import type { Metrics } from "../metrics/metrics.js";
import { messagePush, pushLocal } from "./delivery.js";
import { kickSession } from "./session.js";
import type { SessionRegistry } from "./sessions.js";
import type { UnackedPushes } from "./unacked.js";

const KICK_MESSAGES: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.KICKED]: "logged in elsewhere",
  [ErrorCode.IDLE_TIMEOUT]: "idle for too long",
};

/** What other chat nodes ask of this one: pushes to, and kicks of, sessions held here. */
export function createChatNodeService(
  sessions: SessionRegistry,
  metrics?: Metrics,
  unacked?: UnackedPushes,
): Api<typeof ChatNodeServiceService> {
  return {
    async deliver({ message, toUids }) {
      if (!message) return { error: ErrorCode.INVALID_ARGUMENT, offlineUids: [] };
      const offlineUids = pushLocal(sessions, toUids, messagePush(message), unacked);
      metrics?.messagesOut.inc({ via: "grpc" }, toUids.length - offlineUids.length);
      return { error: ErrorCode.OK, offlineUids };
    },
    async kick({ uid, sessionId, reason }) {
      // One session by id, or (empty id) every session of the user here.
      const targets = sessions.sessionsOf(uid).filter((s) => sessionId === "" || s.id === sessionId);
      if (targets.length === 0) return { error: ErrorCode.OK, kicked: false };
      const code = reason || ErrorCode.KICKED;
      for (const session of targets) kickSession(session, code, KICK_MESSAGES[code] ?? "");
      return { error: ErrorCode.OK, kicked: true };
    },
    async notify({ toUids, envelope }) {
      if (!envelope) return { error: ErrorCode.INVALID_ARGUMENT, offlineUids: [] };
      return { error: ErrorCode.OK, offlineUids: pushLocal(sessions, toUids, envelope) };
    },
  };
}

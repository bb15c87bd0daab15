import { ErrorCode } from "../errors.js";
import type { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import type { Api } from "../grpc/api.js";
import { messagePush, pushLocal } from "./delivery.js";
import { kickSession } from "./session.js";
import type { SessionRegistry } from "./sessions.js";

const KICK_MESSAGES: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.KICKED]: "logged in elsewhere",
  [ErrorCode.IDLE_TIMEOUT]: "idle for too long",
};

/** What other chat nodes ask of this one: pushes to, and kicks of, sessions held here. */
export function createChatNodeService(sessions: SessionRegistry): Api<typeof ChatNodeServiceService> {
  return {
    async deliver({ message, toUids }) {
      if (!message) return { error: ErrorCode.INVALID_ARGUMENT, offlineUids: [] };
      return { error: ErrorCode.OK, offlineUids: pushLocal(sessions, toUids, messagePush(message)) };
    },
    async kick({ uid, sessionId, reason }) {
      const session = sessions.ofUid(uid);
      if (!session || (sessionId !== "" && session.id !== sessionId)) return { error: ErrorCode.OK, kicked: false };
      const code = reason || ErrorCode.KICKED;
      kickSession(session, code, KICK_MESSAGES[code] ?? "");
      return { error: ErrorCode.OK, kicked: true };
    },
    async notify({ toUids, envelope }) {
      if (!envelope) return { error: ErrorCode.INVALID_ARGUMENT, offlineUids: [] };
      return { error: ErrorCode.OK, offlineUids: pushLocal(sessions, toUids, envelope) };
    },
  };
}

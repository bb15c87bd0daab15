import type { ServerDuplexStream } from "@grpc/grpc-js";
import { AppError, ErrorCode } from "../errors.js";
import type { ChatNodeServiceService, PushBatch, PushBatchReply } from "../gen/shardchat/v1/chatnode.js";
import type { Api } from "../grpc/api.js";
import { checkedUid, checkedUids } from "../ids/identifiers.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import { type Fanout, messagePush } from "./fanout.js";
import type { ServerApiService } from "./node-act.js";
import { OutboundFrame } from "./outbound.js";
import { kickSession } from "./session.js";
import type { SessionRegistry } from "./sessions.js";

const KICK_MESSAGES: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.KICKED]: "logged in elsewhere",
  [ErrorCode.IDLE_TIMEOUT]: "idle for too long",
  [ErrorCode.TOKEN_INVALID]: "logged out: the login token was revoked",
  [ErrorCode.ACCOUNT_BANNED]: "the account is banned",
};

/**
 * What other chat nodes ask of this one: pushes to, and kicks of, sessions held here; and what
 * gate's Server API asks (Act, Stats: `serverApi`; UNAVAILABLE without it).
 */
export function createChatNodeService(
  sessions: SessionRegistry,
  fanout: Pick<Fanout, "here">,
  serverApi?: ServerApiService,
): Api<typeof ChatNodeServiceService> {
  const api = () => {
    if (!serverApi) throw new AppError(ErrorCode.UNAVAILABLE, "this chat node serves no Server API");
    return serverApi;
  };
  return {
    act: (request) => api().act(request),
    stats: () => api().stats(),
    async deliver({ message, toUids }) {
      if (!message) return { error: ErrorCode.INVALID_ARGUMENT, offlineUids: [] };
      return {
        error: ErrorCode.OK,
        offlineUids: fanout.here(checkedUids(toUids), messagePush(message), undefined, "grpc"),
      };
    },
    async kick({ uid, sessionId, reason, device }) {
      // One session by id, or (empty id) every session of the user here, of one device kind or any.
      const targets = sessions
        .sessionsOf(checkedUid(uid))
        .filter((s) => (sessionId === "" || s.id === sessionId) && (device === "" || s.device === device));
      if (targets.length === 0) return { error: ErrorCode.OK, kicked: false };
      const code = reason || ErrorCode.KICKED;
      for (const session of targets) kickSession(session, code, KICK_MESSAGES[code] ?? "");
      return { error: ErrorCode.OK, kicked: true };
    },
    async notify({ toUids, envelope }) {
      if (!envelope) return { error: ErrorCode.INVALID_ARGUMENT, offlineUids: [] };
      return {
        error: ErrorCode.OK,
        offlineUids: fanout.here(checkedUids(toUids), { frame: OutboundFrame.of(envelope) }),
      };
    },
  };
}

/**
 * The receiving end of a peer's push stream (PeerLinks): each batch is pushed to the sessions
 * here, frames written as the peer encoded them, and answered in order with who had none.
 */
export function servePushStream(fanout: Pick<Fanout, "fromPeer">, log: Logger) {
  return (call: ServerDuplexStream<PushBatch, PushBatchReply>): void => {
    call.on("data", (batch: PushBatch) => {
      const outcomes = batch.items.map((item) => {
        try {
          const { offline, moved } = fanout.fromPeer(item);
          return { offlineUids: offline, movedUids: moved };
        } catch (err) {
          // An item that does not decode reaches no one; the sender's recipients sync.
          log.warn(sampled({ err }), "bad push item from a peer");
          return { offlineUids: [], movedUids: item.toUids };
        }
      });
      call.write({ batchId: batch.batchId, outcomes });
    });
    call.on("end", () => call.end());
    call.on("error", (err) => log.debug({ err }, "push stream from a peer ended"));
  };
}

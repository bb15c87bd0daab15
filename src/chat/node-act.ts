import { decodeEnvelope } from "../../packages/protocol/src/frame.js";
import { Envelope } from "../../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../errors.js";
import type { ActRequest, ActResponse, StatsResponse } from "../gen/shardchat/v1/chatnode.js";
import { checkedUid } from "../ids/identifiers.js";
import type { Metrics } from "../metrics/metrics.js";
import type { StorageStats } from "../storage/ports.js";
import type { ChatNode } from "./node.js";

/** What a Server API request may not be: the requests that belong to a connection of the user's. */
const CONNECTION_REQUESTS: ReadonlySet<string> = new Set([
  "loginReq",
  "heartbeatReq",
  "syncReq",
  "ackReq",
  "typingReq",
]);

/** The Server API's half of ChatNodeService (issue 18): Act and Stats. */
export interface ServerApiService {
  act(request: ActRequest): Promise<ActResponse>;
  stats(): Promise<StatsResponse>;
}

/**
 * Act runs the request on `node` as its uid; Stats counts the node's sessions and the messages
 * it accepted (per second: since the previous Stats call, or since the node started), and with
 * `storage` the rows of each database instance.
 */
export function serverApiService(
  node: Pick<ChatNode, "act">,
  sessions: () => number,
  metrics: Metrics,
  storage?: StorageStats,
): ServerApiService {
  let last = { atMs: Date.now(), count: 0 };
  return {
    async act({ uid, envelope, privileged }) {
      const request = decodeEnvelope(envelope);
      const body = request.body;
      if (!body || CONNECTION_REQUESTS.has(body.$case)) {
        throw new AppError(
          ErrorCode.INVALID_ARGUMENT,
          `${body?.$case ?? "an empty envelope"} is not a Server API request`,
        );
      }
      if (uid === "0") throw new AppError(ErrorCode.INVALID_ARGUMENT, "uid is required");
      const reply = await node.act(checkedUid(uid), request, privileged);
      return { envelope: Buffer.from(Envelope.encode(reply).finish()) };
    },
    async stats() {
      const count = (await metrics.messagesIn.get()).values[0]?.value ?? 0;
      const now = Date.now();
      const seconds = Math.max(0.001, (now - last.atMs) / 1000);
      const perSecond = Math.max(0, count - last.count) / seconds;
      last = { atMs: now, count };
      const sizes = (await storage?.sizes()) ?? [];
      return {
        sessions: sessions(),
        messagesIn: String(count),
        messagesPerSecond: perSecond,
        storage: sizes.map((s) => ({ instance: s.instance, users: String(s.users), messages: String(s.messages) })),
      };
    },
  };
}

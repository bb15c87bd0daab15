import { errorName } from "../errors.js";
import type { Envelope } from "../gen/shardchat/v1/client.js";
import type { Logger } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { SessionRoutes } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import { groupByNode } from "./delivery.js";
import type { PeerDirectory } from "./peers.js";
import type { SessionRegistry } from "./sessions.js";

export interface NotifyDeps {
  nodeId: string;
  sessions: SessionRegistry;
  routes: SessionRoutes;
  peers: PeerDirectory;
  log: Logger;
  metrics?: Metrics;
}

/**
 * Pushes a notice (friend application, read receipt...) to every session of `toUids`, wherever
 * they are: directly to sessions on this node, and with ONE ChatNodeService.notify per other
 * node for all its users. `exceptSessionId` skips the local session that caused the notice
 * (its other devices still get it). Never throws: notices are not stored, and whoever is
 * offline sees the state itself later (pending applications, the conversation list).
 */
export async function notifyUsers(
  deps: NotifyDeps,
  toUids: Uid[],
  envelope: Envelope,
  exceptSessionId?: string,
): Promise<void> {
  if (toUids.length === 0) return;
  let byNode: Map<string, Uid[]>;
  try {
    byNode = groupByNode(await deps.routes.lookupAll([...new Set(toUids)]));
  } catch (err) {
    deps.log.warn({ err }, "route lookup failed; notice dropped");
    return;
  }
  await Promise.all(
    [...byNode].map(async ([nodeId, uids]) => {
      if (nodeId === deps.nodeId) {
        for (const uid of uids) {
          for (const session of deps.sessions.sessionsOf(uid)) {
            if (session.id !== exceptSessionId) session.send(envelope);
          }
        }
        return;
      }
      try {
        const peer = await deps.peers.get(nodeId);
        if (!peer) return;
        deps.metrics?.nodeCalls.inc({ rpc: "notify" });
        const reply = await peer.notify({ toUids: uids, envelope });
        if (reply.error) deps.log.warn({ nodeId, error: errorName(reply.error) }, "remote notice refused");
      } catch (err) {
        deps.peers.forget(nodeId);
        deps.log.warn({ err, nodeId }, "remote notice failed");
      }
    }),
  );
}

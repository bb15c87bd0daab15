import { errorName } from "../errors.js";
import type { ChatMessage, Envelope } from "../gen/shardchat/v1/client.js";
import type { Logger } from "../log/logger.js";
import type { SessionRoutes } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import type { PeerDirectory } from "./peers.js";
import type { SessionRegistry } from "./sessions.js";

export function messagePush(message: ChatMessage): Envelope {
  return { reqId: 0, body: { $case: "messagePush", value: { message } } };
}

/** Pushes to local sessions; answers the uids that have none here. */
export function pushLocal(sessions: SessionRegistry, toUids: Uid[], envelope: Envelope): Uid[] {
  const offline: Uid[] = [];
  for (const uid of toUids) {
    const session = sessions.ofUid(uid);
    if (session && !session.closed) session.send(envelope);
    else offline.push(uid);
  }
  return offline;
}

export interface DeliveryDeps {
  nodeId: string;
  sessions: SessionRegistry;
  routes: SessionRoutes;
  peers: PeerDirectory;
  log: Logger;
}

/**
 * Delivers a stored message to whoever of `toUids` is online: directly to sessions on this
 * node, and with ONE ChatNodeService.deliver per other node for all its recipients (so a group
 * fan-out costs one call per node, not per member). Never throws: the message is stored, and
 * anyone it misses gets it by sync.
 */
export async function deliver(deps: DeliveryDeps, message: ChatMessage, toUids: Uid[]): Promise<void> {
  let routes: Map<Uid, { nodeId: string }>;
  try {
    routes = await deps.routes.lookup(toUids);
  } catch (err) {
    deps.log.warn({ err, msgId: message.msgId }, "route lookup failed; recipients will sync");
    return;
  }
  const byNode = new Map<string, Uid[]>();
  for (const [uid, route] of routes) {
    const group = byNode.get(route.nodeId);
    if (group) group.push(uid);
    else byNode.set(route.nodeId, [uid]);
  }
  const push = messagePush(message);
  const calls: Promise<void>[] = [];
  for (const [nodeId, uids] of byNode) {
    if (nodeId === deps.nodeId) pushLocal(deps.sessions, uids, push);
    else calls.push(deliverRemote(deps, nodeId, message, uids));
  }
  await Promise.all(calls);
}

async function deliverRemote(deps: DeliveryDeps, nodeId: string, message: ChatMessage, toUids: Uid[]): Promise<void> {
  try {
    const peer = await deps.peers.get(nodeId);
    if (!peer) {
      deps.log.info({ nodeId, msgId: message.msgId }, "recipients' node is gone; they will sync");
      return;
    }
    const reply = await peer.deliver({ message, toUids });
    if (reply.error) deps.log.warn({ nodeId, error: errorName(reply.error) }, "remote delivery refused");
  } catch (err) {
    deps.peers.forget(nodeId);
    deps.log.warn({ err, nodeId, msgId: message.msgId }, "remote delivery failed; recipients will sync");
  }
}

import { errorName } from "../errors.js";
import type { ChatMessage, Envelope } from "../gen/shardchat/v1/client.js";
import type { Logger } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { SessionRoutes } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import type { PeerDirectory } from "./peers.js";
import type { SessionRegistry } from "./sessions.js";
import type { UnackedPushes } from "./unacked.js";

export function messagePush(message: ChatMessage): Envelope {
  return { reqId: 0, body: { $case: "messagePush", value: { message } } };
}

/**
 * Pushes to local sessions; answers the uids that have none here. A message push is
 * remembered in `unacked` until the session acks it (re-pushed after a timeout).
 */
export function pushLocal(
  sessions: SessionRegistry,
  toUids: Uid[],
  envelope: Envelope,
  unacked?: UnackedPushes,
): Uid[] {
  const offline: Uid[] = [];
  const message = envelope.body?.$case === "messagePush" ? envelope.body.value.message : undefined;
  for (const uid of toUids) {
    // Every device of the user that is here (one session per device kind).
    const live = sessions.sessionsOf(uid).filter((session) => !session.closed);
    for (const session of live) {
      session.send(envelope);
      if (message) unacked?.pushed(session, message);
    }
    if (live.length === 0) offline.push(uid);
  }
  return offline;
}

export interface DeliveryDeps {
  nodeId: string;
  sessions: SessionRegistry;
  routes: SessionRoutes;
  peers: PeerDirectory;
  log: Logger;
  metrics?: Metrics;
  unacked?: UnackedPushes;
}

/**
 * Delivers a stored message to whoever of `toUids` is online: directly to sessions on this
 * node, and with ONE ChatNodeService.deliver per other node for all its recipients (so a group
 * fan-out costs one call per node, not per member). Never throws: the message is stored, and
 * anyone it misses gets it by sync.
 */
export async function deliver(deps: DeliveryDeps, message: ChatMessage, toUids: Uid[]): Promise<void> {
  // deliver runs once per newly stored message (never for a resend): the place to count them.
  deps.metrics?.messagesIn.inc();
  const stop = deps.metrics?.deliverySeconds.startTimer();
  try {
    await deliverOnce(deps, message, toUids);
  } finally {
    stop?.();
  }
}

async function deliverOnce(deps: DeliveryDeps, message: ChatMessage, toUids: Uid[]): Promise<void> {
  let routes: Map<Uid, { nodeId: string }[]>;
  try {
    routes = await deps.routes.lookupAll(toUids);
  } catch (err) {
    deps.log.warn({ err, msgId: message.msgId }, "route lookup failed; recipients will sync");
    return;
  }
  const byNode = groupByNode(routes);
  const push = messagePush(message);
  const calls: Promise<void>[] = [];
  for (const [nodeId, uids] of byNode) {
    if (nodeId === deps.nodeId) {
      const offline = pushLocal(deps.sessions, uids, push, deps.unacked);
      deps.metrics?.messagesOut.inc({ via: "local" }, uids.length - offline.length);
    } else calls.push(deliverRemote(deps, nodeId, message, uids));
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
    deps.metrics?.nodeCalls.inc({ rpc: "deliver" });
    const reply = await peer.deliver({ message, toUids }, { requestId: message.msgId });
    if (reply.error) deps.log.warn({ nodeId, error: errorName(reply.error) }, "remote delivery refused");
  } catch (err) {
    deps.peers.forget(nodeId);
    deps.log.warn({ err, nodeId, msgId: message.msgId }, "remote delivery failed; recipients will sync");
  }
}

/**
 * uid → its device routes, regrouped as node → uids there. A user's devices normally share its
 * ring node; while the ring moves they may sit on two, and each node then gets the uid once.
 */
export function groupByNode(routes: Map<Uid, { nodeId: string }[]>): Map<string, Uid[]> {
  const byNode = new Map<string, Uid[]>();
  for (const [uid, deviceRoutes] of routes) {
    for (const nodeId of new Set(deviceRoutes.map((r) => r.nodeId))) {
      const group = byNode.get(nodeId);
      if (group) group.push(uid);
      else byNode.set(nodeId, [uid]);
    }
  }
  return byNode;
}

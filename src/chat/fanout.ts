import type { ChatMessage, Envelope } from "../../packages/protocol/src/wire.js";
import type { PushItem } from "../gen/shardchat/v1/chatnode.js";
import { checkedUids } from "../ids/identifiers.js";
import type { Logger } from "../log/logger.js";
import { sampled } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { SessionRoutes } from "../routing/ports.js";
import { DEVICE_NAMES, type DeviceName } from "../routing/ports.js";
import type { Uid } from "../storage/ports.js";
import type { SpanOptions, TraceSpan, Tracing } from "../tracing/ports.js";
import type { OfflineDeviceKinds, OfflineRecipients } from "./offline-recipients.js";
import { OutboundFrame } from "./outbound.js";
import type { Missed, PeerLinks } from "./peer-links.js";
import type { Session } from "./session.js";
import type { SessionRegistry } from "./sessions.js";
import type { MessagePush, UnackedPushes } from "./unacked.js";

/** Which chat node the ring puts a user on, as this node last saw the ring (undefined before it has). */
export interface RingView {
  ownerOf(uid: Uid): string | undefined;
  /** Whether that ring has not changed for `ms`. */
  unchangedFor(ms: number): boolean;
}

/** A push: its frame, and for a stored message what UnackedPushes keeps until sessions ack it. */
export interface Push {
  frame: OutboundFrame;
  message?: MessagePush;
  /** The fan-out's span, when its send is traced and sampled: each node's delivery is its child. */
  span?: TraceSpan;
}

export function messagePush(message: ChatMessage): Push {
  const frame = OutboundFrame.of({ reqId: 0, body: { $case: "messagePush", value: { message } } });
  return { frame, message: { convId: message.convId, seq: message.seq, frame } };
}

export interface FanoutDeps {
  nodeId: string;
  /**
   * How far an "offline" answer is trusted: up to `checkMax` such users of one push are still
   * looked up in the routes (a 1:1 message to an offline user: one lookup), and all of them
   * while the ring changed less than `settleMs` ago (a node's view of the ring lags status's by
   * up to CHAT_RING_CHECK_MS, so a user may have logged in on a node the ring here does not
   * name yet).
   */
  offlineTrust: { checkMax: number; settleMs: number };
  sessions: SessionRegistry;
  routes: Pick<SessionRoutes, "lookupAll">;
  ring: RingView;
  links: Pick<PeerLinks, "push">;
  unacked: UnackedPushes;
  /**
   * Told, after each stored message's fan-out, who it found with no session anywhere (push
   * notifications, the offline-message webhook). Absent when nothing listens: then nobody is
   * collected.
   */
  offline?: OfflineRecipients;
  /**
   * Told, on the recipient's node, of each user a stored message reached on some of its device
   * kinds only (PUSH_OFFLINE_DEVICE_KINDS). Absent: the kinds are not looked at.
   */
  kindsOffline?: OfflineDeviceKinds;
  /** A traced send's fan-out and each node's delivery of it are spans (TRACING_OTLP_URL). */
  tracing: Tracing;
  log: Logger;
  metrics?: Metrics;
}

/**
 * The one way anything reaches a session: messages (1:1, group, the sender's other devices,
 * re-pushes go through UnackedPushes with the frame built here) and notices (friends, groups,
 * read receipts, presence). A push is encoded once, whatever the number of sessions and nodes
 * it reaches. Where: the ring says which node holds each user, so the hot path asks no one.
 * The session routes (Redis) are asked only for users the ring cannot place: a node that had
 * no session for a user whom its own ring puts elsewhere (the ring moved), a node that could
 * not be reached, or no ring yet; and for users the ring's node reports offline while the ring
 * is unsettled or when they are few (see offlineTrust). A large group's offline members cost
 * nothing once the ring is settled (a 2,000-member group reaches its 6 online members without
 * 6,000 route reads). Every session a message reaches keeps it until that session acks it
 * (re-pushed after a timeout).
 */
export class Fanout {
  constructor(private readonly deps: FanoutDeps) {}

  /**
   * A stored message, to every online recipient and to the sender's other devices here (the
   * ring keeps a user's devices on one node). Never throws: whoever it misses gets it by sync.
   */
  async message(message: ChatMessage, toUids: Uid[], from?: Session): Promise<void> {
    this.deps.metrics?.messagesIn.inc();
    const stop = this.deps.metrics?.deliverySeconds.startTimer();
    const span = this.deps.tracing.enabled ? this.fanoutSpan(message, toUids) : undefined;
    try {
      const push = messagePush(message);
      // Only a sampled send's pushes carry its context: an unsampled one costs its peers nothing.
      if (span?.sampled) push.span = span;
      if (from?.uid !== undefined) this.here([from.uid], push, from.id);
      const offline = await this.everywhere(toUids, push);
      if (offline.length > 0) this.deps.offline?.offline(message, offline);
      span?.setAttribute("shardchat.offline", offline.length);
    } finally {
      stop?.();
      span?.end();
    }
  }

  /** The fan-out of a message, under the send being traced (none outside a trace). */
  private fanoutSpan(message: ChatMessage, toUids: Uid[]): TraceSpan | undefined {
    return this.deps.tracing.childSpan("chat.fanout", {
      kind: "producer",
      attributes: {
        "shardchat.node_id": this.deps.nodeId,
        "shardchat.conv_id": message.convId,
        "shardchat.seq": message.seq,
        "shardchat.recipients": toUids.length,
      },
    });
  }

  /**
   * A notice to every session of `toUids`, except the local session `exceptSessionId` (the one
   * that caused it). Never throws: notices are not stored, and whoever misses one sees the state
   * later (pending applications, the conversation list).
   */
  async notice(toUids: Uid[], envelope: Envelope, exceptSessionId?: string): Promise<void> {
    if (toUids.length === 0) return;
    await this.everywhere(toUids, { frame: OutboundFrame.of(envelope) }, exceptSessionId);
  }

  /** Pushes to the sessions of `toUids` on this node; answers the uids with none here. */
  here(toUids: Uid[], push: Push, exceptSessionId?: string, via: "local" | "grpc" = "local"): Uid[] {
    const missing: Uid[] = [];
    let reached = 0;
    const kindsOffline = push.message ? this.deps.kindsOffline : undefined;
    for (const uid of toUids) {
      let any = false;
      const kinds: DeviceName[] | undefined = kindsOffline ? [] : undefined;
      // Every device of the user that is here (one session per device kind).
      for (const session of this.deps.sessions.sessionsOf(uid)) {
        if (session.closed) continue;
        any = true;
        if (kinds && session.device) kinds.push(session.device);
        if (session.id === exceptSessionId) continue;
        session.send(push.frame);
        if (push.message) this.deps.unacked.pushed(session, push.message);
      }
      if (any) reached += 1;
      else missing.push(uid);
      if (any && kinds && kindsOffline && kinds.length < DEVICE_NAMES.length) {
        const message = pushedMessage(push);
        if (message && message.sender !== uid) kindsOffline.kindsOffline(message, uid, kinds);
      }
    }
    if (push.message && reached > 0) this.deps.metrics?.messagesOut.inc({ via }, reached);
    return missing;
  }

  /** A peer's push, as its stream brought it; answers who had no session here. */
  fromPeer(item: PushItem): Missed {
    const frame = OutboundFrame.fromBinary(item.envelope);
    const push: Push = { frame, message: item.convId ? { convId: item.convId, seq: item.seq, frame } : undefined };
    if (!this.deps.tracing.enabled || item.traceparent === undefined) {
      return this.sortMissing(this.here(checkedUids(item.toUids), push, undefined, "grpc"));
    }
    const remoteParent = { traceparent: item.traceparent, tracestate: item.tracestate };
    return this.tracedHere(checkedUids(item.toUids), push, undefined, "grpc", { remoteParent });
  }

  /**
   * here() in a span of this node's delivery of a traced send, the sender's fan-out its parent.
   * It ends once every frame is handed to its session's socket (written at the end of the tick).
   */
  private tracedHere(
    toUids: Uid[],
    push: Push,
    exceptSessionId: string | undefined,
    via: "local" | "grpc",
    parent: Pick<SpanOptions, "parent" | "remoteParent">,
  ): Missed {
    const span = this.deps.tracing.startSpan("chat.push", {
      kind: "consumer",
      ...parent,
      attributes: {
        "shardchat.node_id": this.deps.nodeId,
        "shardchat.recipients": toUids.length,
        "shardchat.via": via,
      },
    });
    try {
      const missed = this.sortMissing(this.here(toUids, push, exceptSessionId, via));
      span.setAttribute("shardchat.reached", toUids.length - missed.offline.length - missed.moved.length);
      span.end();
      return missed;
    } catch (err) {
      span.end(err);
      throw err;
    }
  }

  /** Users with no session here: offline if the ring puts them here, moved if elsewhere. */
  private sortMissing(missing: Uid[]): Missed {
    const missed: Missed = { offline: [], moved: [] };
    for (const uid of missing) {
      if (this.deps.ring.ownerOf(uid) === this.deps.nodeId) missed.offline.push(uid);
      else missed.moved.push(uid);
    }
    return missed;
  }

  /**
   * Pushes to every session of `toUids`; answers who had none anywhere (only when
   * `deps.offline` listens, else nobody): offline on the ring's node and not looked up again,
   * no route in Redis, or a route whose node had no session for them. A failed route lookup
   * answers nobody for those it asked (they may be online).
   */
  private async everywhere(toUids: Uid[], push: Push, exceptSessionId?: string): Promise<Uid[]> {
    const tried = new Map<Uid, string>();
    const byNode = new Map<string, Uid[]>();
    const unplaced: Uid[] = [];
    for (const uid of new Set(toUids)) {
      const owner = this.deps.ring.ownerOf(uid);
      if (owner === undefined) unplaced.push(uid);
      else {
        tried.set(uid, owner);
        addTo(byNode, owner, uid);
      }
    }
    const { moved, offline } = await this.toNodes(byNode, push, exceptSessionId);
    const { checkMax, settleMs } = this.deps.offlineTrust;
    const recheck = offline.length <= checkMax || !this.deps.ring.unchangedFor(settleMs) ? offline : [];
    const collect = push.message !== undefined && this.deps.offline !== undefined;
    const trustedOffline = collect && recheck.length === 0 ? offline : [];
    const missed = [...unplaced, ...moved, ...recheck];
    if (missed.length === 0) return trustedOffline;
    this.deps.metrics?.routeLookups.inc(missed.length);
    let routes: Map<Uid, { nodeId: string }[]>;
    try {
      routes = await this.deps.routes.lookupAll(missed);
    } catch (err) {
      this.deps.log.warn(sampled({ err, users: missed.length }), "route lookup failed; those recipients will sync");
      return trustedOffline;
    }
    const elsewhere = new Map<string, Uid[]>();
    const nowhere: Uid[] = [];
    for (const uid of missed) {
      const nodes = new Set((routes.get(uid) ?? []).map((r) => r.nodeId));
      let untried = false;
      for (const nodeId of nodes) {
        if (tried.get(uid) === nodeId) continue;
        untried = true;
        addTo(elsewhere, nodeId, uid);
      }
      if (collect && !untried) nowhere.push(uid);
    }
    const second = await this.toNodes(elsewhere, push, exceptSessionId);
    if (!collect) return [];
    return [...trustedOffline, ...nowhere, ...second.offline, ...second.moved];
  }

  /**
   * One push per node for all its users; answers who had no session there: offline, or moved
   * (with the users of nodes that could not be reached).
   */
  private async toNodes(byNode: Map<string, Uid[]>, push: Push, exceptSessionId?: string): Promise<Missed> {
    const missed: Missed = { offline: [], moved: [] };
    const sends: Promise<void>[] = [];
    const trace = push.span?.headers();
    for (const [nodeId, uids] of byNode) {
      if (nodeId === this.deps.nodeId) {
        const here = push.span
          ? this.tracedHere(uids, push, exceptSessionId, "local", { parent: push.span })
          : this.sortMissing(this.here(uids, push, exceptSessionId));
        missed.offline.push(...here.offline);
        missed.moved.push(...here.moved);
        continue;
      }
      this.deps.metrics?.nodeCalls.inc({ rpc: push.message ? "deliver" : "notify" });
      const bytes = push.frame.binary;
      const item: PushItem = {
        toUids: uids,
        envelope: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        convId: push.message?.convId ?? "",
        seq: push.message?.seq ?? 0,
      };
      if (trace) Object.assign(item, trace);
      sends.push(
        this.deps.links.push(nodeId, item).then((outcome) => {
          missed.offline.push(...(outcome?.offline ?? []));
          missed.moved.push(...(outcome ? outcome.moved : uids));
        }),
      );
    }
    await Promise.all(sends);
    return missed;
  }
}

function addTo(groups: Map<string, Uid[]>, key: string, uid: Uid): void {
  const group = groups.get(key);
  if (group) group.push(uid);
  else groups.set(key, [uid]);
}

/** The stored message a push carries (decoded once, from a peer's bytes, only when asked). */
function pushedMessage(push: Push): ChatMessage | undefined {
  const body = push.frame.envelope.body;
  return body?.$case === "messagePush" ? body.value.message : undefined;
}

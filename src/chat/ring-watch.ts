import { ErrorCode } from "../errors.js";
import type { ChatNodeInfo, StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { Api } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";
import { ChatRing } from "../routing/ring.js";
import type { SessionRegistry } from "./sessions.js";

export interface RingCheck {
  /** Sessions told to move and closed. */
  moved: number;
  /** Logged-in sessions whose user no live node can take (a drain with no other node). */
  homeless: number;
}

/**
 * Keeps this node's sessions on the ring status serves: it builds the same ring from status's
 * live nodes (same members, weights and RING_VNODES as getChatNode uses) and sends every user
 * the ring now puts on another node a move push naming it, then closes that session. Only the
 * users whose owner changed move. A draining node counts itself out, so all its users move.
 */
export class RingWatch {
  #draining = false;
  #cached: { membership: string; ring: ChatRing; sinceMs: number } | undefined;
  #checking: Promise<RingCheck> | undefined;

  constructor(
    private readonly status: Pick<Api<typeof StatusServiceService>, "listNodes">,
    private readonly nodeId: string,
    private readonly vnodes: number,
    private readonly sessions: SessionRegistry,
    private readonly log: Logger,
  ) {}

  /** The node the ring puts uid on, as of the last check; undefined before the first answered. */
  ownerOf(uid: string): string | undefined {
    return this.#cached?.ring.ownerOf(uid);
  }

  /** Whether the ring this node sees has not changed for `ms` (false before the first check). */
  unchangedFor(ms: number, now = Date.now()): boolean {
    return this.#cached !== undefined && now - this.#cached.sinceMs >= ms;
  }

  /** From now on this node owns no user (it left status; see startChatNode's drain). */
  drain(): void {
    this.#draining = true;
  }

  /** One comparison; concurrent calls share it. Never throws: status down means no change. */
  check(): Promise<RingCheck> {
    this.#checking ??= this.checkOnce().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  private async checkOnce(): Promise<RingCheck> {
    let nodes: ChatNodeInfo[];
    try {
      ({ nodes } = await this.status.listNodes({}));
    } catch (err) {
      this.log.warn({ err }, "ring check: cannot list chat nodes");
      return { moved: 0, homeless: 0 };
    }
    // Missing from status without draining: our registration lapsed and the next heartbeat
    // registers again. Moving everyone away meanwhile would only bring them back.
    if (!this.#draining && !nodes.some((n) => n.nodeId === this.nodeId)) return { moved: 0, homeless: 0 };
    const members = nodes.filter((n) => !(this.#draining && n.nodeId === this.nodeId));
    const ring = this.ringOf(members);
    const byId = new Map(members.map((n) => [n.nodeId, n]));
    let moved = 0;
    let homeless = 0;
    for (const session of this.sessions.all()) {
      if (session.uid === undefined || session.closed) continue;
      const owner = ring.ownerOf(session.uid);
      if (owner === this.nodeId) continue;
      const node = owner === undefined ? undefined : byId.get(owner);
      if (!node) {
        homeless += 1;
        continue;
      }
      const { nodeId, host, tcpPort, wsUrl } = node;
      const reason = this.#draining ? `${this.nodeId} is draining` : `the ring moved this user to ${nodeId}`;
      session.send({
        reqId: 0,
        body: { $case: "movePush", value: { node: { nodeId, host, tcpPort, wsUrl }, reason } },
      });
      session.close(ErrorCode.WRONG_NODE, reason);
      moved += 1;
    }
    if (moved > 0) this.log.info({ moved, homeless, members: members.length }, "sessions moved to their new nodes");
    return { moved, homeless };
  }

  private ringOf(members: ChatNodeInfo[]): ChatRing {
    const membership = members
      .map((n) => `${n.nodeId}:${n.weight || 1}`)
      .sort()
      .join(",");
    if (this.#cached?.membership !== membership) {
      const ring = new ChatRing(
        members.map((n) => ({ nodeId: n.nodeId, weight: n.weight || 1 })),
        this.vnodes,
      );
      this.#cached = { membership, ring, sinceMs: Date.now() };
    }
    return this.#cached.ring;
  }
}

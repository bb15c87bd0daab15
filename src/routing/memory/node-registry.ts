import type { ChatNodeInfo } from "../../gen/shardchat/v1/status.js";
import type { NodeRegistry } from "../ports.js";
import { type Clock, ExpiringMap, systemClock } from "./clock.js";

/** Live chat nodes of this process (ROUTING_BACKEND=memory): each leaves ttlMs after its last upsert. */
export class MemoryNodeRegistry implements NodeRegistry {
  readonly #nodes: ExpiringMap<string, ChatNodeInfo>;

  constructor(clock: Clock = systemClock) {
    this.#nodes = new ExpiringMap(clock);
  }

  async upsert(node: ChatNodeInfo, ttlMs: number): Promise<void> {
    // A copy, as Redis stores JSON: the caller changing its object later changes nothing here.
    this.#nodes.set(node.nodeId, { ...node }, ttlMs);
  }

  async remove(nodeId: string): Promise<void> {
    this.#nodes.delete(nodeId);
  }

  /** Soonest to expire first, as the Redis registry answers. */
  async live(): Promise<ChatNodeInfo[]> {
    return [...this.#nodes.entries()].sort((a, b) => a[2] - b[2]).map(([, node]) => ({ ...node }));
  }
}

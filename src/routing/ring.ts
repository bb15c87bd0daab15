import HashRing from "hashring";

export interface RingNode {
  nodeId: string;
  weight: number;
}

/**
 * Consistent-hash ring of chat nodes (ketama over md5, via `hashring`). Pure and deterministic:
 * the same nodes give the same owner for a key in every process, whatever order they come in.
 */
export class ChatRing {
  readonly #ring: HashRing;
  readonly #size: number;

  constructor(nodes: readonly RingNode[], vnodesPerWeight: number) {
    if (!Number.isInteger(vnodesPerWeight) || vnodesPerWeight < 1) {
      throw new RangeError(`vnodesPerWeight must be a positive integer, got ${vnodesPerWeight}`);
    }
    const servers: Record<string, { vnodes: number }> = {};
    // Sorted so that the rare two points with the same hash always resolve the same way.
    for (const node of [...nodes].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0))) {
      if (!Number.isInteger(node.weight) || node.weight < 1) {
        throw new RangeError(`weight of ${node.nodeId} must be a positive integer, got ${node.weight}`);
      }
      servers[node.nodeId] = { vnodes: node.weight * vnodesPerWeight };
    }
    this.#size = Object.keys(servers).length;
    // An explicit vnode count per node: hashring would otherwise scale each node's points by its
    // share of the total weight, so adding a node would move keys between the old nodes too.
    // "vnode count" 0 makes every explicit count differ from the default, which hashring
    // needs before it honours it.
    this.#ring = new HashRing(servers, "md5", { "vnode count": 0, replicas: 4 });
  }

  /** The node that owns key, or undefined on an empty ring. */
  ownerOf(key: string): string | undefined {
    if (this.#size === 0) return undefined;
    return this.#ring.get(key);
  }

  /** Number of nodes on the ring. */
  get size(): number {
    return this.#size;
  }
}

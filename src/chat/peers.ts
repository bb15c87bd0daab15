import { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { type Api, type GrpcClient, type GrpcClientOptions, grpcClient } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";

export type ChatNodeApi = Api<typeof ChatNodeServiceService>;

interface Peer {
  grpcAddr: string;
  client: GrpcClient<typeof ChatNodeServiceService>;
}

/**
 * gRPC clients of the other chat nodes, by node id, built from status's node list. The list
 * is reloaded when an unknown node id is asked for, at most every `refreshMs`, so a burst of
 * deliveries to a dead node does not turn into a burst of ListNodes calls.
 */
export class PeerDirectory {
  private readonly peers = new Map<string, Peer>();
  private lastRefreshMs = 0;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly status: Pick<Api<typeof StatusServiceService>, "listNodes">,
    private readonly selfNodeId: string,
    private readonly refreshMs: number,
    private readonly log: Logger,
    /** How to call a peer: the error observer and the cluster's internal token. */
    private readonly clientOptions: GrpcClientOptions = {},
  ) {}

  /** The node's client, or undefined when status does not know the node (it left). */
  async get(nodeId: string): Promise<ChatNodeApi | undefined> {
    return (await this.client(nodeId))?.api;
  }

  /** The node's channel, for its streams as well as its calls. */
  async client(nodeId: string): Promise<GrpcClient<typeof ChatNodeServiceService> | undefined> {
    if (nodeId === this.selfNodeId) return undefined;
    let peer = this.peers.get(nodeId);
    if (!peer) {
      await this.refresh();
      peer = this.peers.get(nodeId);
    }
    return peer?.client;
  }

  /** After a failed call: the node may have moved or left, so look it up again next time. */
  forget(nodeId: string): void {
    this.peers.get(nodeId)?.client.close();
    this.peers.delete(nodeId);
  }

  close(): void {
    for (const peer of this.peers.values()) peer.client.close();
    this.peers.clear();
  }

  private refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (Date.now() - this.lastRefreshMs < this.refreshMs) return Promise.resolve();
    this.refreshing = this.load().finally(() => {
      this.lastRefreshMs = Date.now();
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    let nodes: Awaited<ReturnType<typeof this.status.listNodes>>["nodes"];
    try {
      ({ nodes } = await this.status.listNodes({}));
    } catch (err) {
      this.log.warn({ err }, "cannot list chat nodes");
      return;
    }
    const live = new Set<string>();
    for (const node of nodes) {
      if (node.nodeId === this.selfNodeId || !node.grpcAddr) continue;
      live.add(node.nodeId);
      const known = this.peers.get(node.nodeId);
      if (known?.grpcAddr === node.grpcAddr) continue;
      known?.client.close();
      this.peers.set(node.nodeId, {
        grpcAddr: node.grpcAddr,
        client: grpcClient(ChatNodeServiceService, node.grpcAddr, this.clientOptions),
      });
    }
    for (const nodeId of [...this.peers.keys()]) if (!live.has(nodeId)) this.forget(nodeId);
  }
}

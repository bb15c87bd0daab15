import { connect } from "node:net";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { AttachNodeReply, AttachNodeRequest } from "../gen/shardchat/v1/status.js";
import type { Logger } from "../log/logger.js";
import type { NodeRegistry } from "../routing/ports.js";
import type { StatusApi } from "./service.js";

export interface NodeAttachmentsDeps {
  registry: Pick<NodeRegistry, "live">;
  /** How a node is dropped: the service's leaveNode (it also rebuilds the ring). */
  leave: StatusApi["leaveNode"];
  /** config.NODE_PROBE_TIMEOUT_MS: how long the port probe waits for an answer. */
  probeTimeoutMs: number;
  log: Logger;
}

/**
 * The status end of StatusService.AttachNode: each registered chat node holds one stream. When
 * it breaks, the node's process may be gone (a kill -9 closes its sockets at once) or only the
 * network between them; so status asks the node's gRPC port. A refused connection means nothing
 * listens there: the node is dropped now, and its users find their new node on their next login
 * instead of after NODE_TTL_MS. A port that answers, or does not answer in time (a lost host, a
 * partition), leaves the node to its heartbeats and the TTL.
 */
export function serveNodeAttachments(deps: NodeAttachmentsDeps) {
  return (call: ServerDuplexStream<AttachNodeRequest, AttachNodeReply>): void => {
    let nodeId: string | undefined;
    let ended = false;
    const broken = () => {
      if (ended) return;
      ended = true;
      if (nodeId) void dropIfGone(deps, nodeId);
    };
    call.on("data", (request: AttachNodeRequest) => {
      nodeId ??= request.nodeId || undefined;
    });
    call.on("end", () => {
      call.end();
      broken();
    });
    call.on("cancelled", broken);
    call.on("error", broken);
  };
}

async function dropIfGone(deps: NodeAttachmentsDeps, nodeId: string): Promise<void> {
  try {
    const node = (await deps.registry.live()).find((n) => n.nodeId === nodeId);
    if (!node) return;
    if (!(await refusesConnections(node.grpcAddr, deps.probeTimeoutMs))) {
      deps.log.info({ nodeId }, "a chat node's stream to status broke, but its port answers: left to its heartbeats");
      return;
    }
    await deps.leave({ nodeId });
    deps.log.warn({ nodeId, grpcAddr: node.grpcAddr }, "chat node gone: its stream broke and its port refuses");
  } catch (err) {
    deps.log.warn({ err, nodeId }, "cannot check a chat node whose stream broke; left to its TTL");
  }
}

/** True only when host:port answers with a refusal (nothing listens); a timeout is not one. */
export function refusesConnections(addr: string, timeoutMs: number): Promise<boolean> {
  const at = addr.lastIndexOf(":");
  const host = addr.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  const port = Number(addr.slice(at + 1));
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (refused: boolean) => {
      socket.destroy();
      resolve(refused);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(false));
    socket.once("error", (err: NodeJS.ErrnoException) => done(err.code === "ECONNREFUSED"));
  });
}

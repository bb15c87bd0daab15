import { AppError, ErrorCode } from "../errors.js";
import { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import { type GrpcClient, grpcClient } from "../grpc/api.js";
import type { InternalTls } from "../grpc/tls.js";
import type { Tracing } from "../tracing/ports.js";
import type { SessionKicker } from "./service.js";

/**
 * Ends sessions over the chat nodes' own gRPC (ChatNodeService.Kick, reason TOKEN_INVALID): one
 * client per node address, kept while status runs.
 */
export function grpcSessionKicker(internal: {
  authToken: string;
  tls: InternalTls | undefined;
  tracing?: Tracing | undefined;
}): {
  kick: SessionKicker;
  close(): void;
} {
  const clients = new Map<string, GrpcClient<typeof ChatNodeServiceService>>();
  return {
    async kick(node, uid, device) {
      let client = clients.get(node.grpcAddr);
      if (!client) {
        client = grpcClient(ChatNodeServiceService, node.grpcAddr, { ...internal, deadlineMs: 3000 });
        clients.set(node.grpcAddr, client);
      }
      const reply = await client.api.kick({ uid, sessionId: "", reason: ErrorCode.TOKEN_INVALID, device });
      if (reply.error) throw new AppError(reply.error, `kick refused by ${node.nodeId}`);
    },
    close() {
      for (const client of clients.values()) client.close();
      clients.clear();
    },
  };
}

import { PeerDirectory } from "../chat/peers.js";
import type { Config } from "../config/settings.js";
import type { StatusServiceService } from "../gen/shardchat/v1/status.js";
import type { Api, GrpcClientOptions } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";
import type { ApiKeyStore, BanStore, BotStore, GroupStore, ReportStore } from "../storage/ports.js";
import { ChatNodeActions } from "./chat-nodes.js";
import type { AdminStores } from "./deps.js";

/**
 * The Server API's dependencies on a gate: the adapters compose.ts picked, and clients of the
 * chat nodes (status's node list; the cluster's internal token and TLS in `internal`). Answers
 * them with the close of the clients.
 */
export function createAdminStores(
  adapters: {
    apiKeys: ApiKeyStore;
    bans: BanStore;
    groups: GroupStore;
    reports: ReportStore;
    bots?: BotStore;
  },
  status: Pick<Api<typeof StatusServiceService>, "getChatNode" | "listNodes">,
  config: Pick<Config, "CHAT_PEER_REFRESH_MS">,
  log: Logger,
  internal: GrpcClientOptions = {},
): { stores: AdminStores; close(): void } {
  // "" is no chat node's id: every node is a peer of gate.
  const nodes = new PeerDirectory(status, "", config.CHAT_PEER_REFRESH_MS, log, internal);
  return {
    stores: {
      keys: adapters.apiKeys,
      bans: adapters.bans,
      groups: adapters.groups,
      reports: adapters.reports,
      bots: adapters.bots,
      chat: new ChatNodeActions(status, nodes),
    },
    close: () => nodes.close(),
  };
}

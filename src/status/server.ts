import type { Config } from "../config/settings.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { addApi, startGrpcServer } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";
import type { NodeRegistry, TokenStore } from "../routing/ports.js";
import { createStatusService, type StatusApi } from "./service.js";

export interface StatusServer {
  port: number;
  /** The same service, for callers in this process (no gRPC hop). */
  api: StatusApi;
  close(): Promise<void>;
}

/**
 * Serves the status service on config.STATUS_ADDR (port 0 picks a free one) over the given
 * registry and token store. The caller owns them.
 */
export async function startStatus(deps: {
  config: Config;
  log: Logger;
  registry: NodeRegistry;
  tokens: TokenStore;
}): Promise<StatusServer> {
  const { config, log, registry, tokens } = deps;
  const api = createStatusService({ registry, tokens, config, log });
  const grpc = await startGrpcServer(config.STATUS_ADDR, (server) => addApi(server, StatusServiceService, api));
  log.info({ addr: config.STATUS_ADDR, port: grpc.port }, "status listening");
  return { port: grpc.port, api, close: () => grpc.close() };
}

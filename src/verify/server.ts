import type { Config } from "../config/settings.js";
import { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import { type Api, addApi, startGrpcServer } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";
import type { Mailer } from "../mail/ports.js";
import type { RateLimiter, VerifyCodeStore } from "../routing/ports.js";
import { createVerifyService } from "./service.js";

export interface VerifyHandle {
  port: number;
  /** The same service, for callers in this process (no gRPC hop). */
  api: Api<typeof VerifyServiceService>;
  close(): Promise<void>;
}

/** Serves verify on config.VERIFY_ADDR over the given ports. The caller owns them. */
export async function startVerify(deps: {
  config: Config;
  log: Logger;
  codes: VerifyCodeStore;
  limiter: RateLimiter;
  mailer: Mailer;
}): Promise<VerifyHandle> {
  const { config, log, codes, limiter, mailer } = deps;
  const api = createVerifyService({ codes, limiter, mailer, config, log });
  const grpc = await startGrpcServer(config.VERIFY_ADDR, (server) => addApi(server, VerifyServiceService, api));
  return { port: grpc.port, api, close: () => grpc.close() };
}

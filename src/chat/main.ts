import { createAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { grpcClient } from "../grpc/api.js";
import { leaseSnowflake } from "../ids/lease-snowflake.js";
import { createLogger } from "../log/logger.js";
import { startChatNode } from "./server.js";

let config: Config;
try {
  config = loadConfig();
  requireSharedRouting(config, "a chat node");
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}
const log = createLogger("chat", config.LOG_LEVEL);

let adapters: Awaited<ReturnType<typeof createAdapters>>;
try {
  adapters = await createAdapters(config, log);
} catch (err) {
  log.fatal({ err }, "chat node cannot open its storage");
  process.exit(1);
}
const status = grpcClient(StatusServiceService, config.STATUS_ADDR);

try {
  const snowflake = await leaseSnowflake({ leases: adapters.workerLeases, config, log });
  const node = await startChatNode({
    config,
    log,
    messages: adapters.messages,
    users: adapters.users,
    routes: adapters.routes,
    status: status.api,
    ids: snowflake.ids,
  });
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "chat node stopping");
    await node.close();
    await snowflake.release().catch((err: unknown) => log.warn({ err }, "cannot release the worker id"));
    status.close();
    await adapters.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
} catch (err) {
  log.fatal({ err }, "chat node failed to start");
  status.close();
  await adapters.close();
  process.exit(1);
}

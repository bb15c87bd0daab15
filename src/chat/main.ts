import { createAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { grpcClient } from "../grpc/api.js";
import { leaseSnowflake } from "../ids/lease-snowflake.js";
import { createLogger } from "../log/logger.js";
import { createMetrics } from "../metrics/metrics.js";
import { stopOnSignal } from "../shutdown.js";
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
const metrics = createMetrics("chat");

let adapters: Awaited<ReturnType<typeof createAdapters>>;
try {
  adapters = await createAdapters(config, log, metrics);
} catch (err) {
  log.fatal({ err }, "chat node cannot open its storage");
  process.exit(1);
}
const status = grpcClient(StatusServiceService, config.STATUS_ADDR, {
  onError: (method, code) => metrics.grpcErrors.inc({ method, code }),
  authToken: config.INTERNAL_AUTH_TOKEN,
});

try {
  const snowflake = await leaseSnowflake({ leases: adapters.workerLeases, config, log });
  const node = await startChatNode({
    config,
    log,
    messages: adapters.messages,
    groups: adapters.groups,
    friends: adapters.friends,
    conversations: adapters.conversations,
    files: adapters.files,
    users: adapters.users,
    routes: adapters.routes,
    status: status.api,
    ids: snowflake.ids,
    limiter: adapters.limiter,
    metrics,
    probes: adapters.probes,
  });
  stopOnSignal({
    name: "chat node",
    log,
    timeoutMs: config.CHAT_DRAIN_TIMEOUT_MS + config.SHUTDOWN_TIMEOUT_MS,
    stop: async () => {
      // A graceful stop hands the users over first (ops/drain-chat-node.sh sends SIGTERM).
      await node.drain();
      await node.close();
      await snowflake.release().catch((err: unknown) => log.warn({ err }, "cannot release the worker id"));
      status.close();
      await adapters.close();
    },
  });
} catch (err) {
  log.fatal({ err }, "chat node failed to start");
  status.close();
  await adapters.close();
  process.exit(1);
}

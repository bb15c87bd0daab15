import { chatNodeAdapters, createAdapters, requireSharedRouting, startChatStorageJobs } from "../compose.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { grpcClient } from "../grpc/api.js";
import { internalTlsOf } from "../grpc/tls.js";
import { leaseSnowflake } from "../ids/lease-snowflake.js";
import { createMetrics } from "../metrics/metrics.js";
import { createPushNotifier } from "../push/create.js";
import { runService } from "../shutdown.js";
import { createTracing } from "../tracing/create.js";
import { startChatNode } from "./server.js";

await runService({
  name: "chat",
  label: "chat node",
  check: (config) => requireSharedRouting(config, "a chat node"),
  // A graceful stop hands the users over first (ops/drain-chat-node.sh sends SIGTERM).
  timeoutMs: (config) => config.CHAT_DRAIN_TIMEOUT_MS + config.SHUTDOWN_TIMEOUT_MS,
  async start({ config, log, onStop }) {
    // Closed last: it exports the spans of everything closed before it.
    const tracing = await createTracing(config, { service: "shardchat-chat", instance: config.CHAT_NODE_ID }, log);
    onStop(() => tracing.close());
    const metrics = createMetrics("chat");
    const adapters = await createAdapters(config, log, metrics);
    onStop(() => adapters.close());
    const status = grpcClient(StatusServiceService, config.STATUS_ADDR, {
      onError: (method, code) => metrics.grpcErrors.inc({ method, code }),
      authToken: config.INTERNAL_AUTH_TOKEN,
      tls: internalTlsOf(config),
      tracing,
    });
    onStop(() => status.close());
    const snowflake = await leaseSnowflake({ leases: adapters.workerLeases, config, log });
    onStop(() => snowflake.release());
    // Push notifications (issue 18), only with a provider configured; closed after the node.
    const pushNotifier = createPushNotifier(adapters, config, log, metrics);
    if (pushNotifier) onStop(() => pushNotifier.close());
    const node = await startChatNode({
      ...chatNodeAdapters(adapters),
      config,
      log,
      status: status.api,
      attachToStatus: () => status.openBidiStream(StatusServiceService.attachNode),
      ids: snowflake.ids,
      metrics,
      pushNotifier,
      tracing,
    });
    onStop(async () => {
      await node.drain();
      await node.close();
    });
    // The retention purge and account deletions run in chat nodes, the processes that have the
    // storage (status has none, gate serves requests).
    onStop(startChatStorageJobs(adapters, config, log, metrics, (uid) => node.forgetUser(uid)));
  },
});

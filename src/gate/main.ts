import { createAdminStores } from "../admin/stores.js";
import { createAccountDeletionRequest, createAdapters, requireSharedRouting } from "../compose.js";
import { createFileServices } from "../files/create.js";
import { RedisUploadLocker } from "../files/upload-locker.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import { grpcClient } from "../grpc/api.js";
import { internalTlsOf } from "../grpc/tls.js";
import { leaseSnowflake } from "../ids/lease-snowflake.js";
import { tcpProbe } from "../metrics/health.js";
import { createMetrics } from "../metrics/metrics.js";
import { createRedis } from "../routing/redis-client.js";
import { runService } from "../shutdown.js";
import { createTracing } from "../tracing/create.js";
import { startGate } from "./server.js";

await runService({
  name: "gate",
  check: (config) => requireSharedRouting(config, "gate"),
  async start({ config, log, onStop }) {
    // Closed last: it exports the spans of everything closed before it.
    const tracing = await createTracing(config, { service: "shardchat-gate" }, log);
    onStop(() => tracing.close());
    const metrics = createMetrics("gate");
    const adapters = await createAdapters(config, log, metrics);
    onStop(() => adapters.close());
    const onCallError = (method: string, code: string) => metrics.grpcErrors.inc({ method, code });
    const internal = {
      onError: onCallError,
      authToken: config.INTERNAL_AUTH_TOKEN,
      tls: internalTlsOf(config),
      tracing,
    };
    const verify = grpcClient(VerifyServiceService, config.VERIFY_ADDR, internal);
    onStop(() => verify.close());
    const status = grpcClient(StatusServiceService, config.STATUS_ADDR, internal);
    onStop(() => status.close());
    // The Server API's clients of the chat nodes (issue 18).
    const admin = createAdminStores(adapters, status.api, config, log.child({ use: "server-api" }), internal);
    onStop(() => admin.close());
    // Resumable uploads' locks: a resumed upload's requests may reach any gate (requireSharedRouting
    // above: Redis is there).
    const lockRedis = createRedis(config);
    lockRedis.on("error", () => metrics.redisErrors.inc());
    onStop(() =>
      lockRedis.quit().then(
        () => undefined,
        () => lockRedis.disconnect(),
      ),
    );
    const uploadLocker = new RedisUploadLocker(lockRedis, config.REDIS_KEY_PREFIX, config);
    const lease = await leaseSnowflake({ leases: adapters.workerLeases, config, log });
    onStop(() => lease.release());
    const gate = await startGate({
      config,
      log,
      users: adapters.users,
      verify: verify.api,
      status: status.api,
      ids: lease.ids,
      limiter: adapters.limiter,
      metrics,
      probes: [...adapters.probes, tcpProbe("verify", config.VERIFY_ADDR), tcpProbe("status", config.STATUS_ADDR)],
      files: { meta: adapters.files, messages: adapters.messages, ...createFileServices(config, log, uploadLocker) },
      accounts: createAccountDeletionRequest(adapters, config, status.api, log.child({ use: "account-deletion" })),
      pushDevices: adapters.pushDevices,
      admin: admin.stores,
      tracing,
    });
    onStop(() => gate.close());
    log.info({ host: config.GATE_HOST, port: gate.port, workerId: lease.workerId }, "gate listening");
  },
});

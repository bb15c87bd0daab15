import { createAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { createFileStore } from "../files/create.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import { grpcClient } from "../grpc/api.js";
import { leaseSnowflake } from "../ids/lease-snowflake.js";
import { createLogger } from "../log/logger.js";
import { tcpProbe } from "../metrics/health.js";
import { createMetrics } from "../metrics/metrics.js";
import { stopOnSignal } from "../shutdown.js";
import { startGate } from "./server.js";

let config: Config;
try {
  config = loadConfig();
  requireSharedRouting(config, "gate");
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(2);
}
const log = createLogger("gate", config.LOG_LEVEL);

async function main(): Promise<void> {
  const metrics = createMetrics("gate");
  const adapters = await createAdapters(config, log, metrics);
  const onCallError = (method: string, code: string) => metrics.grpcErrors.inc({ method, code });
  const internal = { onError: onCallError, authToken: config.INTERNAL_AUTH_TOKEN };
  const verify = grpcClient(VerifyServiceService, config.VERIFY_ADDR, internal);
  const status = grpcClient(StatusServiceService, config.STATUS_ADDR, internal);
  const closeAll = async () => {
    verify.close();
    status.close();
    await adapters.close();
  };
  let gate: Awaited<ReturnType<typeof startGate>>;
  let lease: Awaited<ReturnType<typeof leaseSnowflake>>;
  try {
    lease = await leaseSnowflake({ leases: adapters.workerLeases, config, log });
    gate = await startGate({
      config,
      log,
      users: adapters.users,
      verify: verify.api,
      status: status.api,
      ids: lease.ids,
      limiter: adapters.limiter,
      metrics,
      probes: [...adapters.probes, tcpProbe("verify", config.VERIFY_ADDR), tcpProbe("status", config.STATUS_ADDR)],
      files: { meta: adapters.files, bytes: createFileStore(config), messages: adapters.messages },
    });
  } catch (err) {
    await closeAll();
    throw err;
  }
  log.info({ host: config.GATE_HOST, port: gate.port, workerId: lease.workerId }, "gate listening");

  stopOnSignal({
    name: "gate",
    log,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    stop: async () => {
      await gate.close();
      await lease.release();
      await closeAll();
    },
  });
}

main().catch((err: unknown) => {
  log.fatal({ err }, "gate failed to start");
  process.exit(1);
});

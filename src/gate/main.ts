import { createAdapters, requireSharedRouting } from "../compose.js";
import { ConfigError, loadConfig } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { StatusServiceService } from "../gen/shardchat/v1/status.js";
import { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import { grpcClient } from "../grpc/api.js";
import { leaseSnowflake } from "../ids/lease-snowflake.js";
import { createLogger } from "../log/logger.js";
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
  const adapters = await createAdapters(config, log);
  const verify = grpcClient(VerifyServiceService, config.VERIFY_ADDR);
  const status = grpcClient(StatusServiceService, config.STATUS_ADDR);
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
    });
  } catch (err) {
    await closeAll();
    throw err;
  }
  log.info({ host: config.GATE_HOST, port: gate.port, workerId: lease.workerId }, "gate listening");

  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, "gate closing");
    await gate.close();
    await lease.release();
    await closeAll();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  log.fatal({ err }, "gate failed to start");
  process.exit(1);
});

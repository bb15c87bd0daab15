import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { runAdminCommand } from "../../src/admin/api-key-command.js";
import { createAdminStores } from "../../src/admin/stores.js";
import { buildGateApp, type GateDeps } from "../../src/gate/app.js";
import { Snowflake } from "../../src/ids/snowflake.js";
import type { Logger } from "../../src/log/logger.js";
import { LogMailer } from "../../src/mail/log-mailer.js";
import { RedisRateLimiter } from "../../src/routing/redis/rate-limiter.js";
import { RedisVerifyCodeStore } from "../../src/routing/redis/verify-code-store.js";
import type { ReportStore } from "../../src/storage/ports.js";
import { ShardedApiKeyStore, ShardedBanStore } from "../../src/storage/sharded/api-key-store.js";
import { ShardedBotStore } from "../../src/storage/sharded/bot-store.js";
import { ShardedGroupStore } from "../../src/storage/sharded/group-store.js";
import { ShardedReportStore } from "../../src/storage/sharded/report-store.js";
import { createVerifyService } from "../../src/verify/service.js";
import type { ChatCluster } from "./chat-cluster.js";

/**
 * Gate with the Server API over a chat cluster's shards and Redis, listening, and a key the CLI's
 * code path made; with `bots`, the bot routes too.
 */
export interface AdminGate {
  app: FastifyInstance;
  url: string;
  apiKey: string;
  close(): Promise<void>;
}

export async function startAdminGate(
  cluster: ChatCluster,
  log: Logger,
  {
    workerId,
    keyName,
    reports,
    bots = false,
  }: { workerId: number; keyName: string; reports?: ReportStore; bots?: boolean },
): Promise<AdminGate> {
  const { config, shards, redis } = cluster;
  const adminStores = createAdminStores(
    {
      apiKeys: new ShardedApiKeyStore(shards),
      bans: new ShardedBanStore(shards),
      groups: new ShardedGroupStore(shards),
      reports: reports ?? new ShardedReportStore(shards),
      bots: bots ? new ShardedBotStore(shards) : undefined,
    },
    cluster.status.api,
    config,
    log,
  );
  const limiter = new RedisRateLimiter(redis, config.REDIS_KEY_PREFIX);
  const deps: GateDeps = {
    users: cluster.users,
    verify: createVerifyService({
      codes: new RedisVerifyCodeStore(redis, config.REDIS_KEY_PREFIX),
      limiter,
      mailer: new LogMailer(log),
      config,
      log,
    }),
    status: cluster.status.api,
    ids: new Snowflake({ workerId }),
    limiter,
    config: { ...config, LOGIN_MAX_PER_ADDR_PER_MINUTE: 10_000 },
    log,
    admin: adminStores.stores,
  };
  const app = await buildGateApp(deps);
  await app.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // The CLI's own code path: `npm run admin -- api-key create --name <keyName>`.
  const lines = await runAdminCommand(new ShardedApiKeyStore(shards), ["api-key", "create", "--name", keyName]);
  const apiKey = lines.find((l) => l.startsWith("sk_")) ?? "";
  return {
    app,
    url,
    apiKey,
    async close() {
      await app.close();
      adminStores.close();
    },
  };
}

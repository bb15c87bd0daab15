// A process that runs only a webhook dispatcher, as a chat node process runs one beside its
// nodes (src/compose.ts startChatStorageJobs), over the shards and Redis of its environment:
// what the end-to-end test kills with SIGKILL while it holds the instances' leases.
import { loadConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/log/logger.js";
import { RedisJobLocks } from "../../src/routing/redis/job-locks.js";
import { createRedis } from "../../src/routing/redis-client.js";
import { MysqlWebhookOutboxStore } from "../../src/storage/mysql/webhook-outbox-store.js";
import { shardedKeyPlacement } from "../../src/storage/sharded/block-store.js";
import { Shards } from "../../src/storage/sharded/shards.js";
import { startWebhookDispatcher } from "../../src/webhooks/setup.js";

const config = loadConfig();
const log = createLogger("webhook-dispatcher-process", config.LOG_LEVEL);
const shards = await Shards.open(config, log);
const redis = createRedis(config);
const stop = startWebhookDispatcher(config, {
  outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(shards)),
  locks: new RedisJobLocks(redis, config.REDIS_KEY_PREFIX),
  log,
});
log.info("webhook dispatcher process started");
process.once("SIGTERM", () => {
  void (async () => {
    await stop?.();
    await shards.close();
    redis.disconnect();
    process.exit(0);
  })();
});

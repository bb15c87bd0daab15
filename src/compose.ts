import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { AccountDeletionWorker } from "./account/account-deletion-worker.js";
import { type AccountCleanupSettings, DeletedAccountCleanup } from "./account/clean-up-deleted-account.js";
import { AccountDeletionRequest } from "./account/request-deletion.js";
import { ConfigError } from "./config/load.js";
import type { Config } from "./config/settings.js";
import { okOrThrow } from "./errors.js";
import type { StatusServiceService } from "./gen/shardchat/v1/status.js";
import type { Api } from "./grpc/api.js";
import { MemoryWorkerIdLeases } from "./ids/memory-worker-leases.js";
import { RedisWorkerIdLeases, type WorkerIdLeases } from "./ids/worker-leases.js";
import type { Logger } from "./log/logger.js";
import { createMailer } from "./mail/create-mailer.js";
import type { Mailer } from "./mail/ports.js";
import type { Probe } from "./metrics/health.js";
import type { Metrics } from "./metrics/metrics.js";
import { redisProbe } from "./metrics/redis-probe.js";
import { MemoryJobLocks } from "./routing/memory/job-locks.js";
import { MemoryNodeRegistry } from "./routing/memory/node-registry.js";
import { MemoryRateLimiter } from "./routing/memory/rate-limiter.js";
import { MemorySessionRoutes } from "./routing/memory/session-routes.js";
import { MemoryTokenStore } from "./routing/memory/token-store.js";
import { MemoryVerifyCodeStore } from "./routing/memory/verify-code-store.js";
import type {
  JobLocks,
  NodeRegistry,
  RateLimiter,
  SessionRoute,
  SessionRoutes,
  TokenStore,
  VerifyCodeStore,
} from "./routing/ports.js";
import { RedisJobLocks } from "./routing/redis/job-locks.js";
import { RedisNodeRegistry } from "./routing/redis/node-registry.js";
import { RedisRateLimiter } from "./routing/redis/rate-limiter.js";
import { RedisSessionRoutes } from "./routing/redis/session-routes.js";
import { RedisTokenStore } from "./routing/redis/token-store.js";
import { RedisVerifyCodeStore } from "./routing/redis/verify-code-store.js";
import { createRedis } from "./routing/redis-client.js";
import { MysqlAccountDeletionStore } from "./storage/mysql/account-deletion-store.js";
import { MysqlApiKeyStore } from "./storage/mysql/api-key-store.js";
import { MysqlBanStore } from "./storage/mysql/ban-store.js";
import { MysqlBlockStore, onePool } from "./storage/mysql/block-store.js";
import { MysqlBotStore } from "./storage/mysql/bot-store.js";
import { MysqlBulkImporter } from "./storage/mysql/bulk-import.js";
import { MysqlConversationStore } from "./storage/mysql/conversation-store.js";
import { MysqlFileMetaStore } from "./storage/mysql/file-meta-store.js";
import { MysqlFriendStore, singlePool } from "./storage/mysql/friend-store.js";
import { MysqlGroupStore } from "./storage/mysql/group-store.js";
import { MysqlMessageStore } from "./storage/mysql/message-store.js";
import { migrate } from "./storage/mysql/migrate.js";
import { createPool } from "./storage/mysql/pool.js";
import { MysqlPushDeviceStore } from "./storage/mysql/push-device-store.js";
import { MysqlReportStore } from "./storage/mysql/report-store.js";
import { MysqlRetentionStore, MysqlSentMessageEraser, onePoolRetention } from "./storage/mysql/retention-store.js";
import { MysqlStorageStats } from "./storage/mysql/storage-stats.js";
import { MysqlUserStore } from "./storage/mysql/user-store.js";
import { MysqlWebhookOutboxStore } from "./storage/mysql/webhook-outbox-store.js";
import type {
  AccountDeletionStore,
  ApiKeyStore,
  BanStore,
  BlockStore,
  BotStore,
  BulkImporter,
  ConversationStore,
  FileMetaStore,
  FriendStore,
  GroupStore,
  MessageStore,
  PushDeviceStore,
  ReportStore,
  RetentionStore,
  SentMessageEraser,
  StorageStats,
  Uid,
  UserStore,
  WebhookOutboxStore,
} from "./storage/ports.js";
import { RetentionPurger, type RetentionSettings } from "./storage/retention/purger.js";
import { ShardedAccountDeletionStore } from "./storage/sharded/account-deletion-store.js";
import { ShardedApiKeyStore, ShardedBanStore, ShardedStorageStats } from "./storage/sharded/api-key-store.js";
import { ShardedBlockStore, shardedKeyPlacement } from "./storage/sharded/block-store.js";
import { ShardedBotStore } from "./storage/sharded/bot-store.js";
import { ShardedBulkImporter } from "./storage/sharded/bulk-import.js";
import { ShardedConversationStore } from "./storage/sharded/conversation-store.js";
import { ShardedFileMetaStore } from "./storage/sharded/file-meta-store.js";
import { ShardedGroupStore } from "./storage/sharded/group-store.js";
import { ShardedMessageStore } from "./storage/sharded/message-store.js";
import { ShardedPushDeviceStore } from "./storage/sharded/push-device-store.js";
import { ShardedReportStore } from "./storage/sharded/report-store.js";
import { ShardedRetentionStore, ShardedSentMessageEraser } from "./storage/sharded/retention-store.js";
import { configuredInstances, migrateShards, Shards } from "./storage/sharded/shards.js";
import { shardedUidPlacement } from "./storage/sharded/uid-placement.js";
import { ShardedUserStore } from "./storage/sharded/user-store.js";
import { SqliteAccountDeletionStore } from "./storage/sqlite/account-deletion-store.js";
import { SqliteApiKeyStore, SqliteBanStore, SqliteStorageStats } from "./storage/sqlite/api-key-store.js";
import { SqliteBlockStore } from "./storage/sqlite/block-store.js";
import { SqliteBotStore } from "./storage/sqlite/bot-store.js";
import { SqliteConversationStore } from "./storage/sqlite/conversation-store.js";
import { openSqlite, sqliteFileIn } from "./storage/sqlite/database.js";
import { SqliteFileMetaStore } from "./storage/sqlite/file-meta-store.js";
import { SqliteFriendStore } from "./storage/sqlite/friend-store.js";
import { SqliteGroupStore } from "./storage/sqlite/group-store.js";
import { SqliteMessageStore } from "./storage/sqlite/message-store.js";
import { migrateSqlite } from "./storage/sqlite/migrate.js";
import { SqlitePushDeviceStore } from "./storage/sqlite/push-device-store.js";
import { SqliteReportStore } from "./storage/sqlite/report-store.js";
import { SqliteRetentionStore, SqliteSentMessageEraser } from "./storage/sqlite/retention-store.js";
import { SqliteUserStore } from "./storage/sqlite/user-store.js";
import { SqliteWebhookOutboxStore } from "./storage/sqlite/webhook-outbox-store.js";
import { afterSendOutboxOn, startWebhookDispatcher, type WebhookSettings } from "./webhooks/setup.js";

/** Session routes that live sessions keep alive (both adapters have it; the chat node uses it on heartbeats). */
export interface RenewableSessionRoutes extends SessionRoutes {
  refresh(uid: Uid, route: SessionRoute): Promise<boolean>;
}

/** One adapter per port, picked by STORAGE_BACKEND and ROUTING_BACKEND. */
export interface Adapters {
  users: UserStore;
  messages: MessageStore;
  groups: GroupStore;
  files: FileMetaStore;
  friends: FriendStore;
  conversations: ConversationStore;
  /** Blocks between users and reports for operators (issue 17). */
  blocks: BlockStore;
  reports: ReportStore;
  /** The retention purge's storage, and an account deletion's erase of its messages (issue 17). */
  retention: RetentionStore;
  eraser: SentMessageEraser;
  /** Account deletions gate recorded, for the chat nodes to carry out (issue 17). */
  accountDeletions: AccountDeletionStore;
  /** Users' push devices (issue 18): gate registers them, chat nodes read and drop them. */
  pushDevices: PushDeviceStore;
  /** Webhook events waiting for delivery (issue 18): chat nodes record and dispatch them. */
  outbox: WebhookOutboxStore;
  /** Bots (issue 18): gate's Server API makes them, the chat nodes' webhook dispatcher delivers to them. */
  bots: BotStore;
  /** Leases of background jobs run by one process at a time (the retention purge, account deletions). */
  locks: JobLocks;
  /** Bulk loading of users and history (seed-data); absent on SQLite, where the generator appends. */
  bulk?: BulkImporter;
  /** The Server API (issue 18): its keys, user bans, and the instances' sizes for its stats. */
  apiKeys: ApiKeyStore;
  bans: BanStore;
  storageStats: StorageStats;
  nodes: NodeRegistry;
  tokens: TokenStore;
  codes: VerifyCodeStore;
  limiter: RateLimiter;
  routes: RenewableSessionRoutes;
  workerLeases: WorkerIdLeases;
  mailer: Mailer;
  /** Where users and messages live, for people (no password). */
  storageLocation: string;
  /** One per database instance and one for Redis: what /readyz asks. */
  probes: Probe[];
  /** Closes the connections and the database file (once; later calls wait for the first). */
  close(): Promise<void>;
}

type Closer = () => Promise<void> | void;

/** What a chat node takes from the adapters (src/chat/main.ts, and each node of the embedded process). */
export function chatNodeAdapters(a: Adapters) {
  const { messages, groups, friends, conversations, files, blocks, reports, users, routes, limiter, probes, outbox } =
    a;
  // The Server API's shard sizes are counted by the chat nodes (ChatNodeService.Stats); bots get no push (issue 18).
  const { storageStats, bots } = a;
  return {
    messages,
    groups,
    friends,
    conversations,
    files,
    blocks,
    reports,
    users,
    routes,
    limiter,
    probes,
    outbox,
    storageStats,
    bots,
  };
}

/** What STORAGE_BACKEND picks; the rest, but for the mailer, is ROUTING_BACKEND's. */
type StorageAdapterKey =
  | "users"
  | "messages"
  | "groups"
  | "files"
  | "friends"
  | "conversations"
  | "blocks"
  | "reports"
  | "retention"
  | "eraser"
  | "accountDeletions"
  | "pushDevices"
  | "outbox"
  | "bots"
  | "bulk"
  | "apiKeys"
  | "bans"
  | "storageStats"
  | "storageLocation";

export type StorageAdapters = Pick<Adapters, StorageAdapterKey | "probes"> & {
  close: Closer;
};
export type RoutingAdapters = Omit<Adapters, StorageAdapterKey | "mailer" | "close"> & {
  close: Closer;
};

export type AdapterSettings = Pick<
  Config,
  | "STORAGE_BACKEND"
  | "ROUTING_BACKEND"
  | "DATA_DIR"
  | "MYSQL_URL"
  | "MYSQL_POOL_SIZE"
  | "MYSQL_DEADLOCK_RETRIES"
  | "MYSQL_APPEND_BATCH_MAX"
  | "MYSQL_ACK_BATCH_MAX"
  | "MYSQL_MIGRATE"
  | "MYSQL_CONNECT_TIMEOUT_MS"
  | "MYSQL_ACQUIRE_TIMEOUT_MS"
  | "MYSQL_QUERY_TIMEOUT_MS"
  | "MYSQL_APPEND_BATCHES_IN_FLIGHT"
  | "MYSQL_SHARDS"
  | "SHARD_FENCE_WAIT_MS"
  | "SHARD_SLOTS"
  | "SHARD_MAP_REFRESH_MS"
  | "SHARD_KNOWN_CONVERSATIONS"
  | "USER_INDEX_ORPHAN_MS"
  | "REDIS_URL"
  | "REDIS_CLUSTER_NODES"
  | "REDIS_PASSWORD"
  | "REDIS_KEY_PREFIX"
  | "ROUTE_TTL_SECONDS"
  | "WORKER_LEASE_TTL_MS"
  | "SMTP_URL"
  | "MAIL_FROM"
  | "WEBHOOK_ENDPOINTS"
  | "WEBHOOK_SECRET"
  | "BOTS_ENABLED"
>;

/**
 * The composition root: opens the configured backends (migrating the database first) and
 * builds every adapter on them. Services only ever see the ports.
 */
export async function createAdapters(config: AdapterSettings, log: Logger, metrics?: Metrics): Promise<Adapters> {
  const storage = await createStorageAdapters(config, log, metrics);
  let routing: RoutingAdapters;
  try {
    routing = createRoutingAdapters(config, metrics);
  } catch (err) {
    await storage.close();
    throw err;
  }
  const mailer = createMailer(config, log);
  let closing: Promise<void> | undefined;
  return {
    ...storage,
    ...routing,
    probes: [...storage.probes, ...routing.probes],
    mailer,
    close: () => {
      closing ??= (async () => {
        if ("close" in mailer && typeof mailer.close === "function") mailer.close();
        await Promise.resolve(routing.close()).catch((err: unknown) => log.warn({ err }, "closing routing failed"));
        await Promise.resolve(storage.close()).catch((err: unknown) => log.warn({ err }, "closing storage failed"));
      })();
      return closing;
    },
  };
}

/** Users and messages on STORAGE_BACKEND, schema migrated. */
export async function createStorageAdapters(
  config: AdapterSettings,
  log: Logger,
  metrics?: Metrics,
): Promise<StorageAdapters> {
  // Webhooks (issue 18): a message's after-send row is written with it only when an endpoint
  // takes them, or when bots are enabled (the dispatcher delivers the row to the bots among its participants).
  const afterSendOutbox = afterSendOutboxOn(config);
  if (config.STORAGE_BACKEND === "mysql" && config.MYSQL_SHARDS.trim() !== "") {
    // Several instances: every conversation, user and index row on the instance its slot maps to.
    const instances = configuredInstances(config);
    if (config.MYSQL_MIGRATE) await migrateShards(instances, log);
    const shards = await Shards.open(config, log, (shard, seconds) =>
      metrics?.shardQuerySeconds.observe({ shard }, seconds),
    );
    return {
      users: new ShardedUserStore(shards, { orphanMs: config.USER_INDEX_ORPHAN_MS, log }),
      groups: new ShardedGroupStore(shards, { deadlockRetries: config.MYSQL_DEADLOCK_RETRIES, log, afterSendOutbox }),
      messages: new ShardedMessageStore(shards, {
        deadlockRetries: config.MYSQL_DEADLOCK_RETRIES,
        batchMax: config.MYSQL_APPEND_BATCH_MAX,
        ackBatchMax: config.MYSQL_ACK_BATCH_MAX,
        batchConcurrency: config.MYSQL_APPEND_BATCHES_IN_FLIGHT,
        knownConversations: config.SHARD_KNOWN_CONVERSATIONS,
        observeBatch: (op, size) => metrics?.batchSize.observe({ op }, size),
        log,
        afterSendOutbox,
      }),
      files: new ShardedFileMetaStore(shards),
      // Friend rows by uid: each side's row on that side's shard.
      friends: new MysqlFriendStore(shardedUidPlacement(shards)),
      // A block by its blocker's uid, its mark on the pair's conversation row; a report by its id.
      blocks: new ShardedBlockStore(shards),
      reports: new ShardedReportStore(shards),
      // Purged per instance of the map; an erase on its conversation's shard (issue 17).
      retention: new ShardedRetentionStore(shards, config.MYSQL_DEADLOCK_RETRIES),
      eraser: new ShardedSentMessageEraser(shards, config.MYSQL_DEADLOCK_RETRIES),
      // A deletion request on its uid's shard, read per instance by the chat nodes' worker.
      accountDeletions: new ShardedAccountDeletionStore(shards),
      // Push devices by uid, beside the user's other rows.
      pushDevices: new ShardedPushDeviceStore(shards),
      // Webhook events by their place key (a conversation, a uid), dispatched per instance.
      outbox: new MysqlWebhookOutboxStore(shardedKeyPlacement(shards)),
      // Bots by uid, beside their user rows.
      bots: new ShardedBotStore(shards),
      conversations: new ShardedConversationStore(shards, { deadlockRetries: config.MYSQL_DEADLOCK_RETRIES }),
      bulk: new ShardedBulkImporter(shards, config.MYSQL_DEADLOCK_RETRIES),
      apiKeys: new ShardedApiKeyStore(shards),
      bans: new ShardedBanStore(shards),
      storageStats: new ShardedStorageStats(shards),
      probes: instances.map((i) => ({ name: `mysql:${i.id}`, check: () => shards.ping(i.id) })),
      storageLocation: `${instances.length} MySQL shards: ${instances.map((i) => i.url.replace(/\/\/[^@/]*@/, "//")).join(", ")}`,
      close: () => shards.close(),
    };
  }
  if (config.STORAGE_BACKEND === "mysql") {
    if (config.MYSQL_MIGRATE) await migrate(config.MYSQL_URL, log);
    const pool = createPool(config);
    return {
      users: new MysqlUserStore(pool),
      messages: new MysqlMessageStore(pool, {
        deadlockRetries: config.MYSQL_DEADLOCK_RETRIES,
        batchMax: config.MYSQL_APPEND_BATCH_MAX,
        ackBatchMax: config.MYSQL_ACK_BATCH_MAX,
        batchConcurrency: config.MYSQL_APPEND_BATCHES_IN_FLIGHT,
        observeBatch: (op, size) => metrics?.batchSize.observe({ op }, size),
        afterSendOutbox,
      }),
      groups: new MysqlGroupStore(pool, { deadlockRetries: config.MYSQL_DEADLOCK_RETRIES, afterSendOutbox }),
      files: new MysqlFileMetaStore(pool),
      friends: new MysqlFriendStore(singlePool(pool)),
      blocks: new MysqlBlockStore(onePool(pool)),
      reports: new MysqlReportStore(onePool(pool)),
      retention: new MysqlRetentionStore(onePoolRetention(pool, config.MYSQL_DEADLOCK_RETRIES)),
      eraser: new MysqlSentMessageEraser(onePoolRetention(pool, config.MYSQL_DEADLOCK_RETRIES)),
      accountDeletions: new MysqlAccountDeletionStore(onePool(pool)),
      pushDevices: new MysqlPushDeviceStore(onePool(pool)),
      outbox: new MysqlWebhookOutboxStore(onePool(pool)),
      bots: new MysqlBotStore(onePool(pool)),
      conversations: new MysqlConversationStore(pool, undefined, config.MYSQL_DEADLOCK_RETRIES),
      bulk: new MysqlBulkImporter(pool, config.MYSQL_DEADLOCK_RETRIES),
      apiKeys: new MysqlApiKeyStore(onePool(pool)),
      bans: new MysqlBanStore(singlePool(pool)),
      storageStats: new MysqlStorageStats(onePool(pool)),
      probes: [{ name: "mysql", check: () => pool.query("SELECT 1") }],
      storageLocation: config.MYSQL_URL.replace(/\/\/[^@/]*@/, "//"),
      close: () => pool.end(),
    };
  }
  const dataDir = resolve(config.DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  const file = sqliteFileIn(dataDir);
  const db = openSqlite(file);
  try {
    migrateSqlite(db, log);
    return {
      users: new SqliteUserStore(db),
      messages: new SqliteMessageStore(db, { afterSendOutbox }),
      groups: new SqliteGroupStore(db, { afterSendOutbox }),
      files: new SqliteFileMetaStore(db),
      friends: new SqliteFriendStore(db),
      blocks: new SqliteBlockStore(db),
      reports: new SqliteReportStore(db),
      retention: new SqliteRetentionStore(db),
      eraser: new SqliteSentMessageEraser(db),
      accountDeletions: new SqliteAccountDeletionStore(db),
      pushDevices: new SqlitePushDeviceStore(db),
      outbox: new SqliteWebhookOutboxStore(db),
      bots: new SqliteBotStore(db),
      conversations: new SqliteConversationStore(db),
      apiKeys: new SqliteApiKeyStore(db),
      bans: new SqliteBanStore(db),
      storageStats: new SqliteStorageStats(db),
      probes: [{ name: "sqlite", check: async () => db.prepare("SELECT 1").get() }],
      storageLocation: file,
      close: () => {
        db.close();
      },
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Gate's half of an account deletion (DELETE /v1/account, issue 17) on any backend's adapters:
 * sessions end through status (revokeTokens with all, which kicks them on their node), the
 * request is recorded and the profile deleted, all in gate's own tables.
 */
export function createAccountDeletionRequest(
  a: Pick<Adapters, "users" | "accountDeletions" | "pushDevices">,
  config: Pick<Config, "ACCOUNT_DELETE_MESSAGES">,
  status: Pick<Api<typeof StatusServiceService>, "revokeTokens">,
  log: Logger,
): AccountDeletionRequest {
  return new AccountDeletionRequest({
    async revokeSessions(uid) {
      okOrThrow(await status.revokeTokens({ uid, token: "", all: true }));
    },
    deletions: a.accountDeletions,
    users: a.users,
    pushDevices: a.pushDevices,
    settings: config,
    log,
  });
}

/**
 * The chat nodes' half (issue 17): the worker that carries out the recorded deletions, one per
 * process beside the retention purge, its lease per database instance in `locks`. `forget` is
 * called with each deleted uid: the process's chat nodes forget it in their KnownUsers.
 */
export function createAccountDeletionWorker(
  a: Pick<Adapters, "accountDeletions" | "friends" | "groups" | "eraser" | "blocks" | "locks">,
  config: AccountCleanupSettings & Pick<Config, "ACCOUNT_DELETION_POLL_MS">,
  log: Logger,
  forget?: (uid: Uid) => void,
): AccountDeletionWorker {
  return new AccountDeletionWorker({
    store: a.accountDeletions,
    cleanup: new DeletedAccountCleanup({
      friends: a.friends,
      groups: a.groups,
      eraser: a.eraser,
      blocks: a.blocks,
      settings: config,
      log,
    }),
    settings: config,
    log,
    locks: a.locks,
    forget,
  });
}

/**
 * The background jobs of a process that runs chat nodes (issue 17), one each per process however
 * many nodes it runs: the retention purge, the chat nodes' half of account deletions (gate
 * only records them: its database user may not touch the chat tables), and the webhook
 * dispatcher when WEBHOOK_ENDPOINTS is set or BOTS_ENABLED (issue 18). Each takes a lease per
 * database instance in `locks` (Redis across the processes of a deployment, memory in one), so
 * that one process at a time works on an instance (README, "Retention"). `forget` is called with
 * each deleted uid, as for createAccountDeletionWorker. Answers their stop.
 */
export function startChatStorageJobs(
  a: Pick<
    Adapters,
    | "retention"
    | "accountDeletions"
    | "friends"
    | "groups"
    | "eraser"
    | "blocks"
    | "locks"
    | "outbox"
    | "bots"
    | "files"
  >,
  config: RetentionSettings & AccountCleanupSettings & Pick<Config, "ACCOUNT_DELETION_POLL_MS"> & WebhookSettings,
  log: Logger,
  metrics: Metrics,
  forget: (uid: Uid) => void,
): () => Promise<void> {
  const purger = new RetentionPurger({
    store: a.retention,
    files: a.files,
    settings: config,
    log: log.child({ job: "retention" }),
    metrics,
    locks: a.locks,
  });
  purger.start();
  const deletions = createAccountDeletionWorker(a, config, log.child({ job: "account-deletion" }), forget);
  deletions.start();
  // Webhooks (issue 18): the outbox's dispatcher, one instance per lease, when an endpoint is set.
  const webhooks = startWebhookDispatcher(config, {
    outbox: a.outbox,
    bots: a.bots,
    groups: a.groups,
    locks: a.locks,
    log: log.child({ job: "webhooks" }),
    metrics,
  });
  return async () => {
    await webhooks?.();
    await deletions.stop();
    await purger.stop();
  };
}

/**
 * Routing state on ROUTING_BACKEND alone, for services that keep no users or messages (status,
 * verify): they need no database.
 */
export function createRoutingAdapters(config: AdapterSettings, metrics?: Metrics): RoutingAdapters {
  if (config.ROUTING_BACKEND === "redis") {
    const redis = createRedis(config);
    redis.on("error", () => metrics?.redisErrors.inc());
    const prefix = config.REDIS_KEY_PREFIX;
    return {
      nodes: new RedisNodeRegistry(redis, prefix),
      tokens: new RedisTokenStore(redis, prefix),
      codes: new RedisVerifyCodeStore(redis, prefix),
      limiter: new RedisRateLimiter(redis, prefix),
      routes: new RedisSessionRoutes(redis, prefix, config.ROUTE_TTL_SECONDS),
      workerLeases: new RedisWorkerIdLeases(redis, prefix, config.WORKER_LEASE_TTL_MS),
      locks: new RedisJobLocks(redis, prefix),
      probes: [
        redisProbe(redis, ({ ok, fail }) => {
          metrics?.redisMasters.set({ state: "ok" }, ok);
          metrics?.redisMasters.set({ state: "fail" }, fail);
        }),
      ],
      close: async () => {
        await redis.quit().catch(() => redis.disconnect());
      },
    };
  }
  return {
    nodes: new MemoryNodeRegistry(),
    tokens: new MemoryTokenStore(),
    codes: new MemoryVerifyCodeStore(),
    limiter: new MemoryRateLimiter(),
    routes: new MemorySessionRoutes(config.ROUTE_TTL_SECONDS),
    workerLeases: new MemoryWorkerIdLeases(config.WORKER_LEASE_TTL_MS),
    locks: new MemoryJobLocks(),
    probes: [],
    close: () => {},
  };
}

/**
 * For the mains that run one service as its own process: in-memory routing state would be
 * private to that process (a gate could not see the chat nodes, a chat node not the tokens),
 * so it is refused at start instead of failing later in confusing ways.
 */
export function requireSharedRouting(config: Pick<Config, "ROUTING_BACKEND">, service: string): void {
  if (config.ROUTING_BACKEND === "redis") return;
  throw new ConfigError(
    `ROUTING_BACKEND=${config.ROUTING_BACKEND}: ${service} runs as its own process and must share routing state ` +
      "(tokens, codes, chat nodes, routes, id leases) with the other services; set ROUTING_BACKEND=redis (and " +
      "REDIS_URL), or run every service in one process with `npm start`",
  );
}

import type { RowDataPacket } from "mysql2/promise";
import { afterAll, beforeAll } from "vitest";
import { MysqlAccountDeletionStore } from "../../src/storage/mysql/account-deletion-store.js";
import { MysqlApiKeyStore } from "../../src/storage/mysql/api-key-store.js";
import { MysqlBanStore } from "../../src/storage/mysql/ban-store.js";
import { MysqlBlockStore, onePool } from "../../src/storage/mysql/block-store.js";
import { MysqlBotStore } from "../../src/storage/mysql/bot-store.js";
import { MysqlConversationStore } from "../../src/storage/mysql/conversation-store.js";
import { MysqlFileMetaStore } from "../../src/storage/mysql/file-meta-store.js";
import { MysqlFriendStore, singlePool } from "../../src/storage/mysql/friend-store.js";
import { MysqlGroupStore } from "../../src/storage/mysql/group-store.js";
import { MysqlMessageStore } from "../../src/storage/mysql/message-store.js";
import { migrate } from "../../src/storage/mysql/migrate.js";
import { createPool } from "../../src/storage/mysql/pool.js";
import { MysqlPushDeviceStore } from "../../src/storage/mysql/push-device-store.js";
import { MysqlReportStore } from "../../src/storage/mysql/report-store.js";
import {
  MysqlRetentionStore,
  MysqlSentMessageEraser,
  onePoolRetention,
} from "../../src/storage/mysql/retention-store.js";
import { MysqlStorageStats } from "../../src/storage/mysql/storage-stats.js";
import { MysqlUserStore } from "../../src/storage/mysql/user-store.js";
import type {
  AccountDeletionStore,
  ApiKeyStore,
  BanStore,
  BlockStore,
  BotStore,
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
  UserStore,
} from "../../src/storage/ports.js";
import { ShardedAccountDeletionStore } from "../../src/storage/sharded/account-deletion-store.js";
import { ShardedApiKeyStore, ShardedBanStore, ShardedStorageStats } from "../../src/storage/sharded/api-key-store.js";
import { ShardedBlockStore } from "../../src/storage/sharded/block-store.js";
import { ShardedBotStore } from "../../src/storage/sharded/bot-store.js";
import { ShardedConversationStore } from "../../src/storage/sharded/conversation-store.js";
import { ShardedFileMetaStore } from "../../src/storage/sharded/file-meta-store.js";
import { ShardedGroupStore } from "../../src/storage/sharded/group-store.js";
import { ShardedMessageStore } from "../../src/storage/sharded/message-store.js";
import { ShardedPushDeviceStore } from "../../src/storage/sharded/push-device-store.js";
import { ShardedReportStore } from "../../src/storage/sharded/report-store.js";
import { ShardedRetentionStore, ShardedSentMessageEraser } from "../../src/storage/sharded/retention-store.js";
import type { Shards } from "../../src/storage/sharded/shards.js";
import { shardedUidPlacement } from "../../src/storage/sharded/uid-placement.js";
import { ShardedUserStore } from "../../src/storage/sharded/user-store.js";
import { SqliteAccountDeletionStore } from "../../src/storage/sqlite/account-deletion-store.js";
import { SqliteApiKeyStore, SqliteBanStore, SqliteStorageStats } from "../../src/storage/sqlite/api-key-store.js";
import { SqliteBlockStore } from "../../src/storage/sqlite/block-store.js";
import { SqliteBotStore } from "../../src/storage/sqlite/bot-store.js";
import { SqliteConversationStore } from "../../src/storage/sqlite/conversation-store.js";
import { SqliteFileMetaStore } from "../../src/storage/sqlite/file-meta-store.js";
import { SqliteFriendStore } from "../../src/storage/sqlite/friend-store.js";
import { SqliteGroupStore } from "../../src/storage/sqlite/group-store.js";
import { SqliteMessageStore } from "../../src/storage/sqlite/message-store.js";
import { SqlitePushDeviceStore } from "../../src/storage/sqlite/push-device-store.js";
import { SqliteReportStore } from "../../src/storage/sqlite/report-store.js";
import { SqliteRetentionStore, SqliteSentMessageEraser } from "../../src/storage/sqlite/retention-store.js";
import { SqliteUserStore } from "../../src/storage/sqlite/user-store.js";
import { dropTestDatabase, testConfig } from "./env.js";
import { openTestShards } from "./shards.js";
import { tempSqlite } from "./sqlite.js";
import { stackInfraUp } from "./stack.js";

/**
 * Every store of one backend on a database of its own, for the contract suites that run the
 * same cases on SQLite, one MySQL database and MySQL sharded over the stack's MariaDB instances.
 */
export interface OpenedBackend {
  users: UserStore;
  messages: MessageStore;
  groups: GroupStore;
  conversations: ConversationStore;
  files: FileMetaStore;
  friends: FriendStore;
  blocks: BlockStore;
  reports: ReportStore;
  retention: RetentionStore;
  eraser: SentMessageEraser;
  accountDeletions: AccountDeletionStore;
  pushDevices: PushDeviceStore;
  /** The Server API's keys, bans and instance sizes (issue 18). */
  apiKeys: ApiKeyStore;
  bans: BanStore;
  storageStats: StorageStats;
  /** Bots (issue 18). */
  bots: BotStore;
  /** The sizes of the append batches so far (MySQL group commit; empty without it). */
  batches: number[];
  /** A query on the database holding the rows placed by `key` (SQL both dialects speak). */
  rows(key: string, sql: string, params: unknown[]): Promise<Record<string, unknown>[]>;
  /** A write there. */
  exec(key: string, sql: string, params: unknown[]): Promise<void>;
  /** Sharded only: the shards, the instances where a query finds rows, and the one owning `key`. */
  shards?: Shards;
  holders?(sql: string, params: unknown[]): Promise<string[]>;
  ownerOf?(key: string): string;
  close(): Promise<void>;
}

export interface Backend {
  name: string;
  open(): Promise<OpenedBackend>;
}

/** Group commit of the message store on MySQL (each instance's, sharded); left out, none. */
export interface GroupCommit {
  batchMax: number;
  batchConcurrency: number;
}

export interface BackendOptions {
  /** The temp SQLite directory's prefix, which tells whose leftovers a directory is. */
  tag: string;
  groupCommit?: GroupCommit;
  /** Where the shards answer; by default the stack's MariaDB instances, started if need be. */
  shardPorts?: () => Promise<number[]>;
}

/** The three backends in the order the suites report them. */
export function contractBackends(options: BackendOptions): Backend[] {
  return [
    sqliteBackend(options.tag),
    mysqlBackend("mysql", options.groupCommit),
    shardedBackend(options.groupCommit, options.shardPorts),
  ];
}

/**
 * The backend of one describe.each case, opened before its tests and closed after them. The
 * object is filled in by beforeAll: read it in tests and hooks, not while the suite is collected.
 */
export function openedForSuite(backend: Backend): OpenedBackend {
  const opened = {} as OpenedBackend;
  beforeAll(async () => {
    Object.assign(opened, await backend.open());
  }, 300_000);
  afterAll(async () => {
    await opened.close?.();
  });
  return opened;
}

export function sqliteBackend(tag: string): Backend {
  return {
    name: "sqlite",
    async open() {
      const sqlite = tempSqlite(tag);
      const db = sqlite.db;
      return {
        users: new SqliteUserStore(db),
        messages: new SqliteMessageStore(db),
        groups: new SqliteGroupStore(db),
        conversations: new SqliteConversationStore(db),
        files: new SqliteFileMetaStore(db),
        friends: new SqliteFriendStore(db),
        blocks: new SqliteBlockStore(db),
        reports: new SqliteReportStore(db),
        retention: new SqliteRetentionStore(db),
        eraser: new SqliteSentMessageEraser(db),
        accountDeletions: new SqliteAccountDeletionStore(db),
        pushDevices: new SqlitePushDeviceStore(db),
        bots: new SqliteBotStore(db),
        apiKeys: new SqliteApiKeyStore(db),
        bans: new SqliteBanStore(db),
        storageStats: new SqliteStorageStats(db),
        batches: [],
        async rows(_key, sql, params) {
          return db.prepare(sql).all(...params) as Record<string, unknown>[];
        },
        async exec(_key, sql, params) {
          db.prepare(sql).run(...params);
        },
        async close() {
          sqlite.remove();
        },
      };
    },
  };
}

/** The suites' deadlock retries, as the stores' own default. */
const DEADLOCK_RETRIES = 5;

export function mysqlBackend(name: string, groupCommit?: GroupCommit): Backend {
  return {
    name,
    async open() {
      const config = testConfig();
      await migrate(config.MYSQL_URL);
      const pool = createPool(config);
      const batches: number[] = [];
      return {
        users: new MysqlUserStore(pool),
        messages: new MysqlMessageStore(pool, {
          ...groupCommit,
          observeBatch: appendBatchesInto(batches, groupCommit),
        }),
        groups: new MysqlGroupStore(pool),
        conversations: new MysqlConversationStore(pool),
        files: new MysqlFileMetaStore(pool),
        friends: new MysqlFriendStore(singlePool(pool)),
        blocks: new MysqlBlockStore(onePool(pool)),
        reports: new MysqlReportStore(onePool(pool)),
        retention: new MysqlRetentionStore(onePoolRetention(pool, DEADLOCK_RETRIES)),
        eraser: new MysqlSentMessageEraser(onePoolRetention(pool, DEADLOCK_RETRIES)),
        accountDeletions: new MysqlAccountDeletionStore(onePool(pool)),
        pushDevices: new MysqlPushDeviceStore(onePool(pool)),
        bots: new MysqlBotStore(onePool(pool)),
        apiKeys: new MysqlApiKeyStore(onePool(pool)),
        bans: new MysqlBanStore(singlePool(pool)),
        storageStats: new MysqlStorageStats(onePool(pool)),
        batches,
        async rows(_key, sql, params) {
          const [rows] = await pool.query<RowDataPacket[]>(sql, params);
          return rows;
        },
        async exec(_key, sql, params) {
          await pool.query(sql, params);
        },
        async close() {
          await pool.end();
          await dropTestDatabase(config);
        },
      };
    },
  };
}

export function shardedBackend(
  groupCommit?: GroupCommit,
  shardPorts: () => Promise<number[]> = async () => (await stackInfraUp()).mysqlPorts,
): Backend {
  return {
    name: "sharded mysql",
    async open() {
      const { shards, close } = await openTestShards(await shardPorts());
      const on = (key: string) => shards.pool(shards.instanceFor(key).id);
      const batches: number[] = [];
      return {
        users: new ShardedUserStore(shards),
        messages: new ShardedMessageStore(shards, {
          ...groupCommit,
          observeBatch: appendBatchesInto(batches, groupCommit),
        }),
        groups: new ShardedGroupStore(shards),
        conversations: new ShardedConversationStore(shards),
        files: new ShardedFileMetaStore(shards),
        friends: new MysqlFriendStore(shardedUidPlacement(shards)),
        blocks: new ShardedBlockStore(shards),
        reports: new ShardedReportStore(shards),
        retention: new ShardedRetentionStore(shards, DEADLOCK_RETRIES),
        eraser: new ShardedSentMessageEraser(shards, DEADLOCK_RETRIES),
        accountDeletions: new ShardedAccountDeletionStore(shards),
        pushDevices: new ShardedPushDeviceStore(shards),
        bots: new ShardedBotStore(shards),
        apiKeys: new ShardedApiKeyStore(shards),
        bans: new ShardedBanStore(shards),
        storageStats: new ShardedStorageStats(shards),
        batches,
        async rows(key, sql, params) {
          const [rows] = await on(key).query<RowDataPacket[]>(sql, params);
          return rows;
        },
        async exec(key, sql, params) {
          await on(key).query(sql, params);
        },
        shards,
        async holders(sql, params) {
          const found: string[] = [];
          for (const instance of shards.map.instances) {
            const [rows] = await shards.pool(instance.id).query<RowDataPacket[]>(sql, params);
            if (rows.length > 0) found.push(instance.id);
          }
          return found;
        },
        ownerOf: (key) => shards.instanceFor(key).id,
        close,
      };
    },
  };
}

/** Without group commit every batch is one message: nothing to look at. */
function appendBatchesInto(batches: number[], groupCommit?: GroupCommit) {
  if (!groupCommit || groupCommit.batchMax <= 1) return undefined;
  return (op: "append" | "ack", size: number) => {
    if (op === "append") batches.push(size);
  };
}

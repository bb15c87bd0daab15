import { ChatClient, type ChatClientOptions } from "@shardchat/sdk";
import mysql from "mysql2/promise";
import { type ChatNodeDeps, type RunningChatNode, startChatNode } from "../../src/chat/server.js";
import type { Config } from "../../src/config/settings.js";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { type GrpcClient, grpcClient, startGrpcServer } from "../../src/grpc/api.js";
import { Snowflake } from "../../src/ids/snowflake.js";
import { createLogger } from "../../src/log/logger.js";
import { RedisNodeRegistry } from "../../src/routing/redis/node-registry.js";
import { RedisSessionRoutes } from "../../src/routing/redis/session-routes.js";
import { RedisTokenStore } from "../../src/routing/redis/token-store.js";
import { createRedis, type RedisClient } from "../../src/routing/redis-client.js";
import { addStatusService } from "../../src/status/server.js";
import { createStatusService } from "../../src/status/service.js";
import type { Uid } from "../../src/storage/ports.js";
import type { Shards } from "../../src/storage/sharded/shards.js";
import { ShardedUserStore } from "../../src/storage/sharded/user-store.js";
import { testConfig } from "./env.js";
import { openTestShards, type TestShards } from "./shards.js";
import { stackEnv, stackInfraUp } from "./stack.js";

/** A user created for the cluster: the node the ring puts it on, and a token to log in with. */
export interface ClusterUser {
  uid: Uid;
  nodeId: string;
  token: string;
}

/** The stores a chat node of the cluster is given besides users (each test file picks its own). */
export type ClusterStores = Omit<
  ChatNodeDeps,
  "config" | "log" | "users" | "routes" | "status" | "ids" | "messages"
> & { messages: ChatNodeDeps["messages"] };

/**
 * Chat nodes in this process over the stack's three MariaDB shards and Redis, with status
 * answering tokens and the ring: users land on different nodes, conversations on different
 * shards. What the end-to-end suites share; each names its nodes, stores and settings.
 */
export interface ChatCluster {
  config: Config;
  shards: Shards;
  redis: RedisClient;
  status: GrpcClient<typeof StatusServiceService>;
  nodes: Map<string, RunningChatNode>;
  users: ShardedUserStore;
  /** A fresh user the ring puts on nodeId (taken off the pool made at start). */
  take(nodeId: string): ClusterUser;
  /**
   * A logged-in client of user on its node (closed with the cluster); `listen` attaches the
   * test's listeners before the login, since pushes may follow the login reply at once.
   */
  connect(user: ClusterUser, options?: ClusterClientOptions): Promise<ChatClient>;
  close(): Promise<void>;
}

export type ClusterClientOptions = ChatClientOptions & { listen?: (client: ChatClient) => void };

export interface ChatClusterOptions {
  nodeIds: string[];
  /** Users made per node up front, for take(). */
  usersPerNode: number;
  settings?: Partial<Config>;
  stores(shards: Shards): ClusterStores;
  /** Distinguishes this suite's users and snowflake workers from other suites'. */
  tag: string;
}

/**
 * The stack's MariaDB ports, started only if they do not answer: these suites need the shard
 * databases alone, not the stack's Redis Cluster, which stack tests restart at will.
 */
export async function shardPorts(): Promise<number[]> {
  const { mysqlPorts } = await stackEnv();
  const answers = await Promise.all(
    mysqlPorts.map((port) =>
      mysql
        .createConnection({ host: "127.0.0.1", port, user: "root", connectTimeout: 2000 })
        .then((conn) => conn.end().then(() => true))
        .catch(() => false),
    ),
  );
  return answers.every(Boolean) ? mysqlPorts : (await stackInfraUp()).mysqlPorts;
}

export async function startChatCluster(options: ChatClusterOptions): Promise<ChatCluster> {
  const base = testConfig({
    NODE_HEARTBEAT_INTERVAL_MS: 500,
    NODE_TTL_MS: 5000,
    CHAT_PEER_REFRESH_MS: 200,
    ...options.settings,
  });
  const testShards: TestShards = await openTestShards(await shardPorts(), base);
  const { config, shards } = testShards;
  const redis = createRedis(config);
  const log = createLogger(`${options.tag}-test`, config.LOG_LEVEL);
  const registry = new RedisNodeRegistry(redis, config.REDIS_KEY_PREFIX);
  const statusApi = createStatusService({
    registry,
    tokens: new RedisTokenStore(redis, config.REDIS_KEY_PREFIX),
    config,
    log,
  });
  const statusServer = await startGrpcServer("127.0.0.1:0", (server) =>
    addStatusService(server, statusApi, { registry, probeTimeoutMs: config.NODE_PROBE_TIMEOUT_MS, log }),
  );
  const status = grpcClient(StatusServiceService, `127.0.0.1:${statusServer.port}`);
  const users = new ShardedUserStore(shards);
  const stores = options.stores(shards);
  const nodes = new Map<string, RunningChatNode>();
  for (const [i, nodeId] of options.nodeIds.entries()) {
    nodes.set(
      nodeId,
      await startChatNode({
        ...stores,
        config: { ...config, CHAT_NODE_ID: nodeId, CHAT_TCP_PORT: 0, CHAT_WS_PORT: 0, CHAT_GRPC_PORT: 0 },
        log,
        users,
        routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX, 120),
        status: status.api,
        ids: new Snowflake({ workerId: i + 1 }),
      }),
    );
  }

  const pool: ClusterUser[] = [];
  const uidGen = new Snowflake({ workerId: 100 + (hashTag(options.tag) % 400) });
  const enough = () => options.nodeIds.every((n) => pool.filter((u) => u.nodeId === n).length >= options.usersPerNode);
  for (let i = 0; i < options.usersPerNode * options.nodeIds.length * 20 && !enough(); i++) {
    const uid = uidGen.next();
    await users.create({
      uid,
      name: `${options.tag}${i}_${uid.slice(-8)}`,
      email: `${options.tag}${i}_${uid}@example.test`,
      passwordHash: "x",
      createdAt: Date.now(),
    });
    const owner = await status.api.getChatNode({ uid });
    const { token } = await status.api.issueToken({ uid });
    pool.push({ uid, nodeId: owner.node?.nodeId ?? "", token });
  }
  if (!enough()) throw new Error(`the ring did not give every node ${options.usersPerNode} users`);

  const clients: ChatClient[] = [];
  return {
    config,
    shards,
    redis,
    status,
    nodes,
    users,
    take(nodeId) {
      const i = pool.findIndex((u) => u.nodeId === nodeId);
      const [picked] = i < 0 ? [] : pool.splice(i, 1);
      if (!picked) throw new Error(`no user left on ${nodeId}: raise usersPerNode`);
      return picked;
    },
    async connect(user, { listen, ...clientOptions } = {}) {
      const node = nodes.get(user.nodeId);
      if (!node) throw new Error(`no node ${user.nodeId}`);
      const client = await ChatClient.connect(
        { transport: "tcp", host: "127.0.0.1", port: node.info.tcpPort },
        clientOptions,
      );
      clients.push(client);
      listen?.(client);
      await client.login(user.uid, user.token);
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      for (const node of nodes.values()) await node.close();
      status.close();
      await statusServer.close();
      const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
      await testShards.close();
    },
  };
}

function hashTag(tag: string): number {
  let h = 0;
  for (const c of tag) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h;
}

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChatClient } from "@shardchat/sdk";
import { type RunningChatNode, startChatNode } from "../../src/chat/server.js";
import { type Adapters, chatNodeAdapters, createAdapters } from "../../src/compose.js";
import { loadConfig } from "../../src/config/load.js";
import type { Config } from "../../src/config/settings.js";
import type { Uid } from "../../src/ids/identifiers.js";
import { Snowflake } from "../../src/ids/snowflake.js";
import { createLogger } from "../../src/log/logger.js";
import { createStatusService } from "../../src/status/service.js";

/**
 * One chat node on the embedded adapters (SQLite in a temp directory, routing in memory, status
 * in-process): the handlers behind a real socket, with no MariaDB or Redis, started in tens of
 * milliseconds. For tests of what one handler answers; the real-service suites stay.
 */
export interface MemoryNode {
  config: Config;
  node: RunningChatNode;
  /** A stored user with a token (a new uid unless given), logged in over TCP (acks at once). */
  user(name: string, uid?: Uid): Promise<{ uid: Uid; token: string; client: ChatClient }>;
  close(): Promise<void>;
}

export async function startMemoryNode(
  overrides: Partial<Config> = {},
  /**
   * Adapters to use instead of the embedded ones (a real adapter pointed somewhere else), or
   * undefined for a store the node is to run without.
   */
  replace: Partial<Pick<Adapters, "messages" | "groups" | "friends" | "conversations">> = {},
): Promise<MemoryNode> {
  const dir = mkdtempSync(join(tmpdir(), "sc-memory-node-"));
  const config: Config = {
    ...loadConfig({ LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" }),
    STORAGE_BACKEND: "sqlite",
    ROUTING_BACKEND: "memory",
    DATA_DIR: dir,
    CHAT_NODE_ID: "memory-1",
    CHAT_TCP_PORT: 0,
    CHAT_WS_PORT: 0,
    CHAT_GRPC_PORT: 0,
    METRICS_PORT: null,
    ...overrides,
  };
  const log = createLogger("chat-test", config.LOG_LEVEL);
  const adapters = await createAdapters(config, log);
  const status = createStatusService({ registry: adapters.nodes, tokens: adapters.tokens, config, log });
  const ids = new Snowflake({ workerId: 1 });
  const node = await startChatNode({ ...chatNodeAdapters(adapters), ...replace, config, log, status, ids });
  const clients: ChatClient[] = [];
  return {
    config,
    node,
    async user(name, given) {
      const uid = given ?? ids.next();
      await adapters.users.create({
        uid,
        name,
        email: `${name}@example.test`,
        passwordHash: "x",
        createdAt: Date.now(),
      });
      const { token } = await status.issueToken({ uid });
      const client = await ChatClient.connect(
        { transport: "tcp", host: "127.0.0.1", port: node.info.tcpPort },
        { heartbeat: false, ackDelayMs: 0 },
      );
      clients.push(client);
      await client.login(uid, token);
      return { uid, token, client };
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      await node.close();
      await adapters.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

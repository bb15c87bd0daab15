/**
 * A first figure: 1:1 messages per second through one chat node, and the latency from send
 * to the peer's receipt. Everything real (MariaDB, Redis, status over gRPC, TCP clients);
 * users are made directly in the database so the run measures chat, not registration.
 *
 *   npm run bench -- [--pairs 20] [--seconds 10] [--window 8]
 *
 * Prints a table and writes bench/results/<timestamp>-chat-throughput.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startChatNode } from "../src/chat/server.js";
import { loadConfig } from "../src/config/load.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../src/grpc/api.js";
import { Snowflake } from "../src/ids/snowflake.js";
import { createLogger } from "../src/log/logger.js";
import { RedisNodeRegistry } from "../src/routing/redis/node-registry.js";
import { RedisSessionRoutes } from "../src/routing/redis/session-routes.js";
import { RedisTokenStore } from "../src/routing/redis/token-store.js";
import { createRedis } from "../src/routing/redis-client.js";
import { ChatClient } from "../src/sdk/chat-client.js";
import { startStatus } from "../src/status/server.js";
import { MysqlMessageStore } from "../src/storage/mysql/message-store.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool } from "../src/storage/mysql/pool.js";
import { MysqlUserStore } from "../src/storage/mysql/user-store.js";

const { values } = parseArgs({
  options: {
    pairs: { type: "string", default: "20" },
    seconds: { type: "string", default: "10" },
    window: { type: "string", default: "8" },
  },
});
const pairs = Number(values.pairs);
const seconds = Number(values.seconds);
const window = Number(values.window);

const runTag = Date.now().toString(36);
const base = loadConfig({ ...process.env, LOG_LEVEL: "warn" });
const mysqlUrl = new URL(base.MYSQL_URL);
mysqlUrl.pathname = `/sc_bench_${runTag}`;
const config = {
  ...base,
  MYSQL_URL: mysqlUrl.toString(),
  REDIS_KEY_PREFIX: `sc-bench-${runTag}:`,
  STATUS_ADDR: "127.0.0.1:0",
  CHAT_TCP_PORT: 0,
  CHAT_WS_PORT: 0,
  CHAT_GRPC_PORT: 0,
};
const log = createLogger("bench", "warn");

await migrate(config.MYSQL_URL);
const redis = createRedis(config);
const pool = createPool(config);
const status = await startStatus({
  config,
  log,
  registry: new RedisNodeRegistry(redis, config.REDIS_KEY_PREFIX),
  tokens: new RedisTokenStore(redis, config.REDIS_KEY_PREFIX),
});
const statusClient = grpcClient(StatusServiceService, `127.0.0.1:${status.port}`);
const ids = new Snowflake({ workerId: 1000 });
const users = new MysqlUserStore(pool);
const node = await startChatNode({
  config: { ...config, STATUS_ADDR: `127.0.0.1:${status.port}` },
  log,
  messages: new MysqlMessageStore(pool),
  users,
  routes: new RedisSessionRoutes(redis, config.REDIS_KEY_PREFIX),
  status: statusClient.api,
  ids: new Snowflake({ workerId: 1001 }),
});

async function user(i: number): Promise<ChatClient> {
  const uid = ids.next();
  await users.create({
    uid,
    name: `u${i}_${runTag}`,
    email: `u${i}@bench.test`,
    passwordHash: "x",
    createdAt: Date.now(),
  });
  const { token } = await statusClient.api.issueToken({ uid });
  const client = await ChatClient.connect({ transport: "tcp", host: node.info.host, port: node.info.tcpPort });
  await client.login(uid, token);
  return client;
}

const clients: [ChatClient, ChatClient][] = [];
for (let i = 0; i < pairs; i++) clients.push([await user(2 * i), await user(2 * i + 1)]);

const latencies: number[] = [];
let acked = 0;
let delivered = 0;
const sentAt = new Map<string, number>();
const deadline = Date.now() + seconds * 1000;
const started = performance.now();

await Promise.all(
  clients.map(async ([a, b]) => {
    b.on("message", (m) => {
      const t = sentAt.get(m.clientMsgId);
      if (t !== undefined) latencies.push(performance.now() - t);
      delivered++;
    });
    let n = 0;
    async function lane(): Promise<void> {
      while (Date.now() < deadline) {
        const clientMsgId = `${a.uid}-${n++}`;
        sentAt.set(clientMsgId, performance.now());
        await a.sendText(b.uid, "x".repeat(64), clientMsgId);
        acked++;
      }
    }
    await Promise.all(Array.from({ length: window }, lane));
  }),
);
await new Promise((r) => setTimeout(r, 500)); // let the last deliveries land
const elapsed = (performance.now() - started) / 1000;

latencies.sort((x, y) => x - y);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
const result = {
  benchmark: "chat-throughput",
  date: new Date().toISOString(),
  machine: {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  },
  settings: {
    pairs,
    seconds,
    windowPerPair: window,
    textBytes: 64,
    transport: "tcp",
    chatNodes: 1,
    mysql: "one instance",
  },
  figures: {
    ackedPerSecond: Math.round(acked / elapsed),
    deliveredPerSecond: Math.round(delivered / elapsed),
    acked,
    delivered,
    latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: latencies.at(-1) ?? 0 },
  },
};
console.table({
  "acked msg/s": result.figures.ackedPerSecond,
  "delivered msg/s": result.figures.deliveredPerSecond,
  "p50 ms": pct(50).toFixed(1),
  "p99 ms": pct(99).toFixed(1),
  "max ms": (latencies.at(-1) ?? 0).toFixed(1),
});
const dir = join(import.meta.dirname, "results");
mkdirSync(dir, { recursive: true });
const file = join(dir, `${result.date.replace(/[:.]/g, "-")}-chat-throughput.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`written to ${file}`);

await Promise.all(clients.flat().map((c) => c.close()));
await node.close();
await status.close();
statusClient.close();
await pool.query(`DROP DATABASE \`sc_bench_${runTag}\``);
await pool.end();
redis.disconnect();
process.exit(0);

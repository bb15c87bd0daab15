import { createAdminStores } from "./admin/stores.js";
import { type RunningChatNode, startChatNode } from "./chat/server.js";
import { chatNodeAdapters, createAccountDeletionRequest, createAdapters, startChatStorageJobs } from "./compose.js";
import { describeSettings } from "./config/load.js";
import type { Config } from "./config/settings.js";
import { createFileServices } from "./files/create.js";
import { startGate } from "./gate/server.js";
import { StatusServiceService } from "./gen/shardchat/v1/status.js";
import { VerifyServiceService } from "./gen/shardchat/v1/verify.js";
import { grpcClient } from "./grpc/api.js";
import { internalTlsOf } from "./grpc/tls.js";
import { leaseSnowflake } from "./ids/lease-snowflake.js";
import { createMetrics } from "./metrics/metrics.js";
import { createPushNotifier } from "./push/create.js";
import { runService, type ServiceStart } from "./shutdown.js";
import { startStatus } from "./status/server.js";
import { createTracing } from "./tracing/create.js";
import { startVerify } from "./verify/server.js";

const usage = `shardchat: gate, verify, status and chat nodes in one process.

  npm start                 start everything (settings from the environment)
  npm start -- --help       this text

With no settings it needs nothing else: users and messages go to a SQLite file in DATA_DIR
(./data), routing state stays in this process, verify codes are written to the log.
STORAGE_BACKEND=mysql ROUTING_BACKEND=redis runs the same on MySQL (MYSQL_URL) and Redis
(REDIS_URL), where each service can also run as its own process:
node --import tsx src/<gate|verify|status|chat>/main.ts

Settings (environment variables):
${describeSettings()}`;

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  console.log(usage);
  process.exit(0);
}

/** host:port with the port actually bound (the configured one may be 0). */
function boundAddr(addr: string, port: number): string {
  return `${addr.slice(0, addr.lastIndexOf(":"))}:${port}`;
}

/** Node i's port: the configured one plus i, unless it is 0 (any free port). */
function nthPort(port: number, i: number): number {
  return port === 0 ? 0 : port + i;
}

/** Every service in this process; what it opened closes in reverse order on a signal (runService). */
async function start({ config, log, onStop }: ServiceStart): Promise<void> {
  // One process, one registry: gate's ops server (METRICS_PORT, when set) serves /metrics,
  // /healthz and /readyz for all of it, so the other services' own (which would collide) stay off.
  const metrics = createMetrics("stack");
  // One tracer for the process, closed last (it exports the spans of everything closed before
  // it); spans tell its chat nodes apart by shardchat.node_id.
  const tracing = await createTracing(config, { service: "shardchat" }, log);
  onStop(() => tracing.close());
  const adapters = await createAdapters(config, log, metrics);
  onStop(() => adapters.close());
  const serviceConfig: Config = { ...config, METRICS_PORT: null };

  const status = await startStatus({
    config: serviceConfig,
    log: log.child({ service: "status" }),
    registry: adapters.nodes,
    tokens: adapters.tokens,
    tracing,
  });
  onStop(() => status.close());
  const verify = await startVerify({
    config: serviceConfig,
    log: log.child({ service: "verify" }),
    codes: adapters.codes,
    limiter: adapters.limiter,
    mailer: adapters.mailer,
    tracing,
  });
  onStop(() => verify.close());

  // In-memory routing exists only in this process, so nothing is gained by a gRPC hop to
  // ourselves; on Redis the services talk over gRPC as they do when run apart.
  const inProcess = config.ROUTING_BACKEND === "memory";
  let statusApi = status.api;
  let verifyApi = verify.api;
  if (!inProcess) {
    const internal = { authToken: config.INTERNAL_AUTH_TOKEN, tls: internalTlsOf(config), tracing };
    const statusClient = grpcClient(StatusServiceService, boundAddr(config.STATUS_ADDR, status.port), internal);
    const verifyClient = grpcClient(VerifyServiceService, boundAddr(config.VERIFY_ADDR, verify.port), internal);
    onStop(() => statusClient.close());
    onStop(() => verifyClient.close());
    statusApi = statusClient.api;
    verifyApi = verifyClient.api;
  }

  // One push notifier for the process's chat nodes (issue 18), when a provider is configured.
  const pushNotifier = createPushNotifier(adapters, config, log, metrics);
  if (pushNotifier) onStop(() => pushNotifier.close());

  const nodeCount = config.STACK_CHAT_NODES || (inProcess ? 1 : 2);
  const nodes: RunningChatNode[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const nodeConfig: Config = {
      ...serviceConfig,
      CHAT_NODE_ID: nodeCount === 1 ? config.CHAT_NODE_ID : `chat-${i + 1}`,
      CHAT_TCP_PORT: nthPort(config.CHAT_TCP_PORT, i),
      CHAT_WS_PORT: nthPort(config.CHAT_WS_PORT, i),
      CHAT_GRPC_PORT: nthPort(config.CHAT_GRPC_PORT, i),
    };
    const nodeLog = log.child({ service: "chat", node: nodeConfig.CHAT_NODE_ID });
    const lease = await leaseSnowflake({
      leases: adapters.workerLeases,
      config: nodeConfig,
      log: nodeLog,
      owner: nodeConfig.CHAT_NODE_ID,
    });
    onStop(() => lease.release());
    const node = await startChatNode({
      ...chatNodeAdapters(adapters),
      config: nodeConfig,
      log: nodeLog,
      status: statusApi,
      ids: lease.ids,
      metrics,
      pushNotifier,
      tracing,
    });
    onStop(() => node.close());
    nodes.push(node);
  }

  // One retention purge and one account deletion worker per process, not per chat node (memory
  // leases here, Redis with ROUTING_BACKEND=redis); a deleted uid is forgotten by every chat node
  // of this process at once.
  onStop(
    startChatStorageJobs(adapters, config, log, metrics, (uid) => {
      for (const node of nodes) node.forgetUser(uid);
    }),
  );

  // The Server API (issue 18): gate reaches the chat nodes over their gRPC, as when run apart.
  const admin = createAdminStores(adapters, statusApi, config, log.child({ use: "server-api" }), {
    authToken: config.INTERNAL_AUTH_TOKEN,
    tls: internalTlsOf(config),
    tracing,
  });
  onStop(() => admin.close());
  const gateLease = await leaseSnowflake({ leases: adapters.workerLeases, config, log, owner: "gate" });
  onStop(() => gateLease.release());
  const gate = await startGate({
    config,
    log: log.child({ service: "gate" }),
    users: adapters.users,
    verify: verifyApi,
    status: statusApi,
    ids: gateLease.ids,
    limiter: adapters.limiter,
    metrics,
    probes: adapters.probes,
    files: { meta: adapters.files, messages: adapters.messages, ...createFileServices(config, log) },
    accounts: createAccountDeletionRequest(adapters, config, statusApi, log.child({ use: "account-deletion" })),
    pushDevices: adapters.pushDevices,
    admin: admin.stores,
    tracing,
  });
  onStop(() => gate.close());

  const gateUrl = `http://${config.GATE_HOST}:${gate.port}`;
  const cli = gateUrl === "http://127.0.0.1:8080" ? "npm run cli --" : `npm run cli -- --gate ${gateUrl}`;
  const routing = inProcess
    ? "in this process (ROUTING_BACKEND=memory)"
    : `${config.REDIS_CLUSTER_NODES || config.REDIS_URL} (prefix ${config.REDIS_KEY_PREFIX})`;
  console.log(
    [
      "",
      "shardchat is running",
      `  gate (HTTP)      ${gateUrl}`,
      `  web client       ${gateUrl}/  (open it in a browser)`,
      ...nodes.map(
        ({ info: n }) => `  ${n.nodeId.padEnd(16)} tcp ${n.host}:${n.tcpPort}  ws ${n.wsUrl}  grpc ${n.grpcAddr}`,
      ),
      `  status (gRPC)    ${boundAddr(config.STATUS_ADDR, status.port)}`,
      `  verify (gRPC)    ${boundAddr(config.VERIFY_ADDR, verify.port)}`,
      `  mail             ${config.SMTP_URL ? config.SMTP_URL.replace(/\/\/[^@/]*@/, "//") : "verify codes are written to this log"}`,
      `  data             ${adapters.storageLocation} (STORAGE_BACKEND=${config.STORAGE_BACKEND})`,
      `  routing          ${routing}`,
      `  metrics, health  ${gate.opsPort === undefined ? "off (set METRICS_PORT)" : `http://${config.METRICS_HOST}:${gate.opsPort}/metrics, /readyz`}`,
      "",
      "First user, with the terminal client (in another terminal):",
      `  ${cli} code you@example.com`,
      `  ${cli} register you you@example.com 'a-long-password' <code>`,
      `  ${cli} chat you 'a-long-password'`,
      "",
      "Every setting: npm start -- --help",
      "",
    ].join("\n"),
  );
}

await runService({ name: "stack", label: "shardchat", configHint: "(see npm start -- --help)", start });

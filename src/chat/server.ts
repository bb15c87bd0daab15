import type { ClientDuplexStream } from "@grpc/grpc-js";
import { KnownBots, withoutBots } from "../bots/offline-filter.js";
import type { Config } from "../config/settings.js";
import { ErrorCode, errorName } from "../errors.js";
import { ChatNodeServiceService } from "../gen/shardchat/v1/chatnode.js";
import type {
  AttachNodeReply,
  AttachNodeRequest,
  ChatNodeInfo,
  StatusServiceService,
} from "../gen/shardchat/v1/status.js";
import { type Api, addApi, isWildcard, requireTokenBeyondLoopback, startGrpcServer } from "../grpc/api.js";
import { internalTlsOf } from "../grpc/tls.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { Probe } from "../metrics/health.js";
import { createMetrics, type Metrics } from "../metrics/metrics.js";
import { startConfiguredOpsServer } from "../metrics/ops-server.js";
import { MemoryRateLimiter } from "../routing/memory/rate-limiter.js";
import type { RateLimiter, SessionRoutes } from "../routing/ports.js";
import type {
  BlockStore,
  BotStore,
  ConversationStore,
  FileMetaStore,
  FriendStore,
  GroupStore,
  MessageStore,
  ReportStore,
  StorageStats,
  Uid,
  UserStore,
  WebhookOutboxStore,
} from "../storage/ports.js";
import { noTracing, type Tracing } from "../tracing/ports.js";
import { OfflineMessageWebhook } from "../webhooks/offline.js";
import { createChatWebhooks } from "../webhooks/setup.js";
import { DeliveredCursors } from "./delivered-cursors.js";
import { Fanout } from "./fanout.js";
import { KnownUsers } from "./known-users.js";
import { ChatLimits } from "./limits.js";
import { ChatNode } from "./node.js";
import { serverApiService } from "./node-act.js";
import { createChatNodeService, servePushStream } from "./node-service.js";
import { allOfflineRecipients, type OfflineDeviceKinds, type OfflineRecipients } from "./offline-recipients.js";
import { PeerLinks } from "./peer-links.js";
import { PeerDirectory } from "./peers.js";
import { RingWatch } from "./ring-watch.js";
import { SessionRegistry } from "./sessions.js";
import { startTcpTransport, type TransportLimits } from "./transport/tcp.js";
import { startWsTransport } from "./transport/ws.js";
import { UnackedPushes } from "./unacked.js";

export interface ChatNodeDeps {
  config: Config;
  log: Logger;
  messages: MessageStore;
  /** Without it the node answers group requests UNAVAILABLE (a node built for 1:1 only, e.g. a benchmark). */
  groups?: GroupStore;
  /** Without them the node answers friend and conversation-list requests UNAVAILABLE. */
  friends?: FriendStore;
  conversations?: ConversationStore;
  /** Without it file messages are checked for shape only (their file is not looked up). */
  files?: FileMetaStore;
  /** Without them the node answers block and report requests UNKNOWN_MESSAGE_TYPE (issue 17). */
  blocks?: BlockStore;
  reports?: ReportStore;
  users: UserStore;
  routes: SessionRoutes;
  status: Api<typeof StatusServiceService>;
  /**
   * Opens StatusService.AttachNode (status over gRPC): held while the node is registered, so
   * status notices at once when this process dies. Absent when status runs in this process.
   */
  attachToStatus?: () => ClientDuplexStream<AttachNodeRequest, AttachNodeReply>;
  ids: IdGenerator;
  /** Counts each user's messages per second across nodes; without it, this node counts alone. */
  limiter?: RateLimiter;
  /** A fresh registry when absent. */
  metrics?: Metrics;
  /** What /readyz asks: the node's shards and Redis. */
  probes?: Probe[];
  /**
   * Push notifications for recipients with no session anywhere, and with PUSH_OFFLINE_DEVICE_KINDS
   * for the devices of a kind a recipient has no session of (src/push/notifier.ts, issue 18);
   * absent when no push provider is configured: the fan-out then collects nobody.
   */
  pushNotifier?: OfflineRecipients & OfflineDeviceKinds;
  /**
   * The webhook outbox (issue 18): with WEBHOOK_ENDPOINTS set, the node records presence, friend,
   * group and offline-recipient events there. Absent: none are recorded.
   */
  outbox?: WebhookOutboxStore;
  /** Rows per database instance, for the Server API's stats (issue 18); absent: Stats answers none. */
  storageStats?: StorageStats;
  /**
   * Bots (issue 18): with BOTS_ENABLED, the offline recipients a message found are told to push
   * and the offline webhook without its bots (which never have a session). Absent: not filtered.
   */
  bots?: Pick<BotStore, "list">;
  /**
   * Spans (TRACING_OTLP_URL): a send, its fan-out and each node's delivery; the node's gRPC calls
   * made inside a trace. Off when absent.
   */
  tracing?: Tracing;
}

export interface RunningChatNode {
  /** What the node registered with status (with the ports actually bound). */
  info: ChatNodeInfo;
  /** Live sessions on this node right now. */
  sessionCount(): number;
  metrics: Metrics;
  /** Pushes waiting for their session's ack (tests look inside). */
  unacked: UnackedPushes;
  /** The /metrics, /healthz, /readyz port (METRICS_PORT set), else undefined. */
  opsPort: number | undefined;
  /**
   * Forgets that uid exists (its account was deleted, issue 17): the next send, invitation,
   * block or report naming it reads the users shard again and is refused.
   */
  forgetUser(uid: Uid): void;
  close(): Promise<void>;
  /**
   * Leaves the ring (status), pushes every session a move to its new node and waits up to
   * CHAT_DRAIN_TIMEOUT_MS for them to go; then close() ends what is left. Answers how many
   * sessions were still here at the end.
   */
  drain(): Promise<number>;
}

/**
 * Starts a chat node: TCP, WebSocket and node-to-node gRPC listeners (port 0 picks a free
 * one), then registers with status and heartbeats. Status being down does not stop the node:
 * it keeps serving its sessions and registers again once status answers.
 */
export async function startChatNode(deps: ChatNodeDeps): Promise<RunningChatNode> {
  const { config, status } = deps;
  // Before anything starts: a node that may not open its gRPC must not half-start.
  const tls = internalTlsOf(config);
  requireTokenBeyondLoopback(`${config.CHAT_GRPC_HOST}:${config.CHAT_GRPC_PORT}`, config.INTERNAL_AUTH_TOKEN, tls);
  const log = deps.log.child({ nodeId: config.CHAT_NODE_ID });
  const sessions = new SessionRegistry();
  const metrics = deps.metrics ?? createMetrics("chat");
  // Added per node, as shardchat_connections counts every node's sessions of the process.
  metrics.sessionsLimit.inc(config.CHAT_MAX_SESSIONS);
  const tracing = deps.tracing ?? noTracing;
  const peers = new PeerDirectory(status, config.CHAT_NODE_ID, config.CHAT_PEER_REFRESH_MS, log, {
    onError: (method, code) => metrics.grpcErrors.inc({ method, code }),
    authToken: config.INTERNAL_AUTH_TOKEN,
    tls,
    tracing,
  });
  const chatLimits = new ChatLimits(
    deps.limiter ?? new MemoryRateLimiter(),
    {
      messagesPerConnection: config.CHAT_CONN_MSGS_PER_SECOND,
      messagesPerUser: config.CHAT_USER_MSGS_PER_SECOND,
      friendApplicationsPerDay: config.FRIEND_APPLY_PER_DAY,
      groupCreatesPerDay: config.GROUP_CREATES_PER_DAY,
      groupInvitesPerDay: config.GROUP_INVITES_PER_DAY,
      reportsPerDay: config.REPORTS_PER_DAY,
      requestsPerConnection: config.CHAT_CONN_REQUESTS_PER_SECOND,
      searchesPerConnectionPerMinute: config.CHAT_CONN_SEARCHES_PER_MINUTE,
      typingMinIntervalMs: config.TYPING_MIN_INTERVAL_MS,
      loginsPerSecond: config.CHAT_LOGINS_PER_SECOND,
      loginBurst: config.CHAT_LOGIN_BURST,
    },
    metrics,
    (uid) => ringWatch.ownerOf(uid) === config.CHAT_NODE_ID,
  );
  const unacked = new UnackedPushes(
    config.CHAT_PUSH_ACK_TIMEOUT_MS,
    config.CHAT_UNACKED_PUSH_MAX,
    config.CHAT_UNACKED_RETAIN_MS,
  );
  const delivered = new DeliveredCursors(deps.messages, config.CHAT_ACK_FLUSH_MS, log);
  const ringWatch = new RingWatch(status, config.CHAT_NODE_ID, config.RING_VNODES, sessions, log);
  const links = new PeerLinks(peers, {
    maxPending: config.CHAT_PEER_MAX_PENDING,
    replyTimeoutMs: config.CHAT_PEER_REPLY_TIMEOUT_MS,
    log,
    onBatch: (items) => metrics.batchSize.observe({ op: "peer_push" }, items),
  });
  // Webhooks (issue 18): events besides stored messages, and the before-send hook, when configured.
  const webhooks = createChatWebhooks(config, { outbox: deps.outbox, ids: deps.ids, log, metrics });
  const offline = allOfflineRecipients([
    deps.pushNotifier,
    webhooks.events && new OfflineMessageWebhook(webhooks.events, (task) => node.ctx.background(task)),
  ]);
  // Bots (issue 18) never have a session: no push nor offline event for them (the bots' uids are
  // read every BOTS_CACHE_MS, only when someone listens to offline recipients).
  const knownBots =
    offline && config.BOTS_ENABLED && deps.bots ? new KnownBots(deps.bots, config.BOTS_CACHE_MS, log) : undefined;
  knownBots?.start();
  const fanout = new Fanout({
    nodeId: config.CHAT_NODE_ID,
    offlineTrust: { checkMax: config.CHAT_OFFLINE_RECHECK_MAX, settleMs: config.CHAT_RING_SETTLE_MS },
    sessions,
    routes: deps.routes,
    ring: ringWatch,
    links,
    unacked,
    offline: offline && knownBots ? withoutBots(offline, knownBots) : offline,
    // Bots have no push devices: the notifier finds none for them.
    kindsOffline: config.PUSH_OFFLINE_DEVICE_KINDS ? deps.pushNotifier : undefined,
    tracing,
    log,
    metrics,
  });
  const knownUsers = new KnownUsers(deps.users, config.CHAT_KNOWN_USERS_MAX, config.CHAT_KNOWN_USERS_TTL_MS);
  const node = new ChatNode({
    ...deps,
    log,
    nodeId: config.CHAT_NODE_ID,
    sessions,
    peers,
    metrics,
    limits: chatLimits,
    unacked,
    delivered,
    fanout,
    ring: ringWatch,
    knownUsers,
    webhooks: webhooks.events,
    beforeSend: webhooks.beforeSend,
    tracing,
  });
  const limits: TransportLimits = {
    maxFrameBytes: config.CHAT_MAX_FRAME_BYTES,
    maxOutboundBytes: config.CHAT_MAX_OUTBOUND_BYTES,
    closeGraceMs: config.CHAT_CLOSE_GRACE_MS,
  };

  const grpc = await startGrpcServer(
    `${config.CHAT_GRPC_HOST}:${config.CHAT_GRPC_PORT}`,
    (server) =>
      addApi(
        server,
        ChatNodeServiceService,
        createChatNodeService(
          sessions,
          fanout,
          serverApiService(node, () => sessions.size, metrics, deps.storageStats),
        ),
        { push: servePushStream(fanout, log) },
        tracing,
      ),
    { authToken: config.INTERNAL_AUTH_TOKEN, tls },
  );
  const tcp = await startTcpTransport(config.CHAT_HOST, config.CHAT_TCP_PORT, node, limits, log);
  const ws = await startWsTransport(config.CHAT_HOST, config.CHAT_WS_PORT, node, limits, log);
  node.startSweeping();
  unacked.start();
  delivered.start();

  const host = config.CHAT_PUBLIC_HOST || config.CHAT_HOST;
  const info: ChatNodeInfo = {
    nodeId: config.CHAT_NODE_ID,
    host,
    tcpPort: config.CHAT_PUBLIC_TCP_PORT || tcp.port,
    wsUrl: config.CHAT_PUBLIC_WS_URL
      ? `${config.CHAT_PUBLIC_WS_URL.replace(/\/+$/, "")}/${config.CHAT_NODE_ID}`
      : `ws://${host}:${ws.port}/`,
    grpcAddr: `${config.CHAT_GRPC_PUBLIC_HOST || (isWildcard(config.CHAT_GRPC_HOST) ? host : config.CHAT_GRPC_HOST)}:${grpc.port}`,
    weight: config.CHAT_WEIGHT,
    connections: 0,
  };
  const ops = await startConfiguredOpsServer(config, { metrics, probes: deps.probes ?? [], log });
  const membership = new StatusMembership(status, info, () => sessions.size, log, deps.attachToStatus);
  await membership.beat();
  const heartbeatTimer = setInterval(() => void membership.beat(), config.NODE_HEARTBEAT_INTERVAL_MS);
  heartbeatTimer.unref();
  // The ring before the first session: the fan-out places recipients with it.
  await ringWatch.check();
  const ringTimer = setInterval(() => void ringWatch.check(), config.CHAT_RING_CHECK_MS);
  ringTimer.unref();
  log.info({ tcpPort: tcp.port, wsUrl: info.wsUrl, grpcAddr: info.grpcAddr }, "chat node started");

  let closing: Promise<void> | undefined;
  let draining: Promise<number> | undefined;
  const drain = async (): Promise<number> => {
    clearInterval(heartbeatTimer);
    await membership.leave();
    ringWatch.drain();
    log.info({ sessions: sessions.size }, "draining: moving sessions to the other nodes");
    const deadline = Date.now() + config.CHAT_DRAIN_TIMEOUT_MS;
    while (sessions.size > 0 && Date.now() < deadline) {
      const { homeless } = await ringWatch.check();
      // Nowhere to send them (the last node): waiting would not help.
      if (homeless > 0 && homeless >= sessions.size) break;
      await new Promise((resolve) => setTimeout(resolve, Math.min(200, config.CHAT_RING_CHECK_MS)));
    }
    log.info({ left: sessions.size }, "drained");
    return sessions.size;
  };
  return {
    info,
    sessionCount: () => sessions.size,
    metrics,
    unacked,
    opsPort: ops?.port,
    forgetUser: (uid) => knownUsers.forget(uid),
    drain: () => {
      draining ??= drain();
      return draining;
    },
    close: () => {
      closing ??= (async () => {
        clearInterval(heartbeatTimer);
        clearInterval(ringTimer);
        unacked.stop();
        await membership.leave();
        // The listener stops accepting now but only finishes once its sockets are gone,
        // which node.close() sees to.
        const tcpClosed = tcp.close();
        await node.close();
        // The cursors acked so far, before storage closes behind us.
        await delivered.stop();
        await Promise.all([tcpClosed, ws.close(), grpc.close()]);
        links.close();
        peers.close();
        await webhooks.close();
        knownBots?.stop();
        await ops?.close();
        metrics.sessionsLimit.dec(config.CHAT_MAX_SESSIONS);
        log.info("chat node stopped");
      })();
      return closing;
    },
  };
}

/**
 * Registration and heartbeats with status; a heartbeat answered NOT_FOUND registers again. While
 * registered, the node also holds its attach stream to status (reopened on the next beat after it
 * breaks), whose end tells status the process may be gone.
 */
class StatusMembership {
  private registered = false;
  private beating: Promise<void> | undefined;
  private attached: ClientDuplexStream<AttachNodeRequest, AttachNodeReply> | undefined;

  constructor(
    private readonly status: Api<typeof StatusServiceService>,
    private readonly info: ChatNodeInfo,
    private readonly connections: () => number,
    private readonly log: Logger,
    private readonly attach?: () => ClientDuplexStream<AttachNodeRequest, AttachNodeReply>,
  ) {}

  private holdAttachment(): void {
    if (this.attached || !this.attach || !this.registered) return;
    const stream = this.attach();
    this.attached = stream;
    const lost = () => {
      if (this.attached === stream) this.attached = undefined;
    };
    stream.on("error", lost);
    stream.on("end", lost);
    // No reply ever comes; reading keeps the stream flowing.
    stream.on("data", () => undefined);
    stream.write({ nodeId: this.info.nodeId });
  }

  private detach(): void {
    const stream = this.attached;
    this.attached = undefined;
    stream?.cancel();
  }

  /** Never throws: a status outage only means trying again on the next beat. */
  beat(): Promise<void> {
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    const connections = this.connections();
    try {
      if (this.registered) {
        const reply = await this.status.heartbeat({ nodeId: this.info.nodeId, connections });
        if (reply.error === ErrorCode.OK) {
          this.holdAttachment();
          return;
        }
        if (reply.error !== ErrorCode.NOT_FOUND) {
          this.log.warn({ error: errorName(reply.error) }, "heartbeat refused");
          return;
        }
        this.log.warn("status forgot this node; registering again");
      }
      const reply = await this.status.registerNode({ node: { ...this.info, connections } });
      this.registered = reply.error === ErrorCode.OK;
      if (!this.registered) this.log.error({ error: errorName(reply.error) }, "registration refused");
      this.holdAttachment();
    } catch (err) {
      this.log.warn({ err }, "status unreachable; serving on, will retry");
    }
  }

  async leave(): Promise<void> {
    await this.beating;
    this.detach();
    if (!this.registered) return;
    try {
      await this.status.leaveNode({ nodeId: this.info.nodeId });
      this.registered = false;
    } catch (err) {
      this.log.warn({ err }, "cannot leave status; the node will expire from the ring");
    }
  }
}

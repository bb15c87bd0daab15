import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * The metrics of one service process, on a registry of its own (never prom-client's global
 * one), so several services in one process or one test each see only their own.
 */
export interface Metrics {
  registry: Registry;
  connections: Gauge<"transport">;
  messagesIn: Counter;
  messagesOut: Counter<"via">;
  storeSeconds: Histogram<"op">;
  deliverySeconds: Histogram;
  grpcErrors: Counter<"method" | "code">;
  shardQuerySeconds: Histogram<"shard">;
  redisErrors: Counter;
  rateLimited: Counter<"limit">;
  /** Node-to-node calls this node made (a group fan-out is one per node with online members). */
  nodeCalls: Counter<"rpc">;
  /** Recipients the ring could not place, looked up in the session routes. */
  routeLookups: Counter;
  /** Items per storage batch (group commit of appends, delivery-ack writes). */
  batchSize: Histogram<"op">;
  /** Messages the retention purge deleted (issue 17). */
  retentionPurged: Counter;
  /** How long the retention purge's last pass over one instance took, by instance. */
  retentionPassSeconds: Gauge<"instance">;
  /** Webhook calls an endpoint answered 2xx, by event type (issue 18). */
  webhookDelivered: Counter<"type">;
  /** Webhook calls that failed (an error, a timeout, a non-2xx answer), by event type: each is retried. */
  webhookFailed: Counter<"type">;
  /** Webhook events given up after WEBHOOK_MAX_ATTEMPTS, by event type (kept in webhook_outbox). */
  webhookDead: Counter<"type">;
  /** Age of the oldest event in the dispatcher's last batch, by database instance. */
  webhookLagSeconds: Gauge<"instance">;
  /** Webhook events the chat node could not record (their outbox insert failed), by type. */
  webhookRecordFailed: Counter<"type">;
  /** Before-send hook answers: allow, reject, rewrite, failed_open, failed_closed. */
  webhookBeforeSend: Counter<"outcome">;
  /** Push notifications sent to push services, by provider and outcome (sent, gone, failed) (issue 18). */
  pushes: Counter<"provider" | "outcome">;
  /** Offline recipients not notified because the push queue was full (PUSH_QUEUE_MAX). */
  pushQueueDropped: Counter;
  /** Whether each dependency (MySQL shard, Redis, peer service) answered its probe, refreshed at every scrape. */
  dependencyUp: Gauge<"dependency">;
  /** Redis masters by state (ok, fail), as the cluster reports them, refreshed at every scrape. */
  redisMasters: Gauge<"state">;
  /** Requests a service answered (chat protocol requests, gate's HTTP requests). */
  requests: Counter<"protocol">;
  /** Requests answered with a server-side failure (a code whose HTTP status is 5xx): chat by code name, http by status. */
  requestFailures: Counter<"protocol" | "code">;
  /** CHAT_MAX_SESSIONS of this chat node, for the sessions-near-their-limit alert. */
  sessionsLimit: Gauge;
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** A fresh registry with the process metrics (event-loop lag, heap, CPU) and the service's own. */
export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const registers = [registry];
  return {
    registry,
    connections: new Gauge({
      name: "shardchat_connections",
      help: "Open client connections by transport",
      labelNames: ["transport"],
      registers,
    }),
    messagesIn: new Counter({
      name: "shardchat_messages_in_total",
      help: "Chat messages accepted from senders (stored and acked, resends excluded)",
      registers,
    }),
    messagesOut: new Counter({
      name: "shardchat_messages_out_total",
      help: "Chat messages pushed to recipients' sessions, by how they reached this node",
      labelNames: ["via"],
      registers,
    }),
    storeSeconds: new Histogram({
      name: "shardchat_store_seconds",
      help: "Latency of storage calls made by request handlers",
      labelNames: ["op"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    deliverySeconds: new Histogram({
      name: "shardchat_delivery_seconds",
      help: "From a stored message to its push on every online recipient's node",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    grpcErrors: new Counter({
      name: "shardchat_grpc_client_errors_total",
      help: "Failed outgoing gRPC calls by method and gRPC status code",
      labelNames: ["method", "code"],
      registers,
    }),
    shardQuerySeconds: new Histogram({
      name: "shardchat_shard_query_seconds",
      help: "Latency of pool queries by MySQL shard instance",
      labelNames: ["shard"],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    redisErrors: new Counter({ name: "shardchat_redis_errors_total", help: "Redis client errors", registers }),
    nodeCalls: new Counter({
      name: "shardchat_node_calls_total",
      help: "Node-to-node gRPC calls made by this chat node, by rpc",
      labelNames: ["rpc"],
      registers,
    }),
    routeLookups: new Counter({
      name: "shardchat_route_lookups_total",
      help: "Recipients the ring could not place (moved while the ring changes, node unreachable), looked up in the session routes",
      registers,
    }),
    batchSize: new Histogram({
      name: "shardchat_store_batch_size",
      help: "Items carried by one storage batch: messages per append transaction, cursors per ack write",
      labelNames: ["op"],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    rateLimited: new Counter({
      name: "shardchat_rate_limited_total",
      help: "Requests refused by a rate limit, by limit",
      labelNames: ["limit"],
      registers,
    }),
    retentionPurged: new Counter({
      name: "shardchat_retention_purged_messages_total",
      help: "Messages deleted by the retention purge (MESSAGE_TTL_SECONDS, groups' own TTLs)",
      registers,
    }),
    retentionPassSeconds: new Gauge({
      name: "shardchat_retention_pass_seconds",
      help: "Duration of the retention purge's last pass over a database instance, by instance",
      labelNames: ["instance"],
      registers,
    }),
    webhookDelivered: new Counter({
      name: "shardchat_webhook_delivered_total",
      help: "Webhook calls an endpoint answered 2xx, by event type",
      labelNames: ["type"],
      registers,
    }),
    webhookFailed: new Counter({
      name: "shardchat_webhook_failed_total",
      help: "Webhook calls that failed (error, timeout, non-2xx) and will be retried, by event type",
      labelNames: ["type"],
      registers,
    }),
    webhookDead: new Counter({
      name: "shardchat_webhook_dead_total",
      help: "Webhook events given up after WEBHOOK_MAX_ATTEMPTS (kept in webhook_outbox), by event type",
      labelNames: ["type"],
      registers,
    }),
    webhookLagSeconds: new Gauge({
      name: "shardchat_webhook_outbox_lag_seconds",
      help: "Age of the oldest webhook event in the dispatcher's last batch, by database instance",
      labelNames: ["instance"],
      registers,
    }),
    webhookRecordFailed: new Counter({
      name: "shardchat_webhook_record_failed_total",
      help: "Webhook events (other than a message's after-send) the chat node could not write to the outbox, by type",
      labelNames: ["type"],
      registers,
    }),
    webhookBeforeSend: new Counter({
      name: "shardchat_webhook_before_send_total",
      help: "Before-send hook answers by outcome (allow, reject, rewrite, failed_open, failed_closed)",
      labelNames: ["outcome"],
      registers,
    }),
    pushes: new Counter({
      name: "shardchat_push_notifications_total",
      help: "Push notifications handed to push services, by provider (webpush, fcm, apns) and outcome (sent, gone: the device was dropped, failed)",
      labelNames: ["provider", "outcome"],
      registers,
    }),
    pushQueueDropped: new Counter({
      name: "shardchat_push_queue_dropped_total",
      help: "Offline recipients left without a push notification because the chat node's push queue was full (PUSH_QUEUE_MAX)",
      registers,
    }),
    dependencyUp: new Gauge({
      name: "shardchat_dependency_up",
      help: "1 when the dependency (mysql:<shard>, redis, a peer service) answered its readiness probe at the last scrape, else 0",
      labelNames: ["dependency"],
      registers,
    }),
    redisMasters: new Gauge({
      name: "shardchat_redis_masters",
      help: "Redis masters by state as the cluster reports them at the last scrape: ok, or fail (down, its slots on a promoted replica or on nobody)",
      labelNames: ["state"],
      registers,
    }),
    requests: new Counter({
      name: "shardchat_requests_total",
      help: "Requests answered, by protocol (chat: the chat protocol's requests; http: gate's HTTP requests)",
      labelNames: ["protocol"],
      registers,
    }),
    requestFailures: new Counter({
      name: "shardchat_request_failures_total",
      help: "Requests answered with a server-side failure (an error code whose HTTP status is 5xx), by protocol and code (chat: the error code's name; http: the status)",
      labelNames: ["protocol", "code"],
      registers,
    }),
    sessionsLimit: new Gauge({
      name: "shardchat_sessions_limit",
      help: "Most sessions this chat node accepts (CHAT_MAX_SESSIONS)",
      registers,
    }),
  };
}

/** Runs call and records its duration in seconds. */
export async function timed<T>(observe: (seconds: number) => void, call: () => Promise<T>): Promise<T> {
  const start = process.hrtime.bigint();
  try {
    return await call();
  } finally {
    observe(Number(process.hrtime.bigint() - start) / 1e9);
  }
}

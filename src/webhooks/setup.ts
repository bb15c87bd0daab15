import { CachedBotDirectory } from "../bots/directory.js";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/settings.js";
import type { IdGenerator } from "../ids/ports.js";
import type { Logger } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { JobLocks } from "../routing/ports.js";
import type { BotStore, GroupStore, WebhookOutboxStore } from "../storage/ports.js";
import { AFTER_SEND_EVENT } from "../storage/webhook-outbox.js";
import { type BeforeSendHook, HttpBeforeSendHook } from "./before-send.js";
import { type DispatchSettings, WebhookDispatcher } from "./dispatcher.js";
import { type EndpointTable, parseEndpoints } from "./endpoints.js";
import { OutboxWebhookEvents, type WebhookEvents } from "./events.js";
import { HttpWebhookSender } from "./sender.js";

export type WebhookSettings = DispatchSettings &
  Pick<
    Config,
    | "WEBHOOK_ENDPOINTS"
    | "WEBHOOK_SECRET"
    | "WEBHOOK_BEFORE_SEND_URL"
    | "WEBHOOK_BEFORE_SEND_TIMEOUT_MS"
    | "WEBHOOK_BEFORE_SEND_FAIL_OPEN"
    | "CHAT_MAX_TEXT_CHARS"
    | "BOTS_ENABLED"
    | "BOTS_CACHE_MS"
  >;

/** The endpoint table of WEBHOOK_ENDPOINTS (checked when the config loaded), and the secret it needs. */
export function webhookEndpoints(config: Pick<Config, "WEBHOOK_ENDPOINTS" | "WEBHOOK_SECRET">): EndpointTable {
  let table: EndpointTable;
  try {
    table = parseEndpoints(config.WEBHOOK_ENDPOINTS);
  } catch (err) {
    throw new ConfigError(`bad setting: WEBHOOK_ENDPOINTS: ${(err as Error).message}`);
  }
  if (table.any && config.WEBHOOK_SECRET === "") {
    throw new ConfigError("WEBHOOK_ENDPOINTS is set: WEBHOOK_SECRET is required (every call is signed with it)");
  }
  return table;
}

/**
 * Whether the message stores write after-send rows: only when an endpoint takes them, or when
 * bots are enabled (the dispatcher hands each row to the bots among its participants).
 */
export function afterSendOutboxOn(
  config: Pick<Config, "WEBHOOK_ENDPOINTS" | "WEBHOOK_SECRET" | "BOTS_ENABLED">,
): boolean {
  return webhookEndpoints(config).subscribed(AFTER_SEND_EVENT) || botsOn(config);
}

/** BOTS_ENABLED, with the secret every bot call is signed with (a ConfigError without it). */
export function botsOn(config: Pick<Config, "WEBHOOK_SECRET" | "BOTS_ENABLED">): boolean {
  if (!config.BOTS_ENABLED) return false;
  if (config.WEBHOOK_SECRET === "") {
    throw new ConfigError("BOTS_ENABLED is set: WEBHOOK_SECRET is required (every bot.message call is signed with it)");
  }
  return true;
}

/** What a chat node uses: each part only when configured. */
export interface ChatWebhooks {
  events?: WebhookEvents;
  beforeSend?: BeforeSendHook;
  close(): Promise<void>;
}

/**
 * A chat node's webhooks (issue 18): the recorder of events besides stored messages (when an
 * endpoint is configured and the node has the outbox), and the before-send hook (when its URL is).
 */
export function createChatWebhooks(
  config: WebhookSettings,
  deps: { outbox?: WebhookOutboxStore; ids: IdGenerator; log: Logger; metrics?: Metrics },
): ChatWebhooks {
  const endpoints = webhookEndpoints(config);
  const hookUrl = config.WEBHOOK_BEFORE_SEND_URL;
  if (hookUrl !== "" && config.WEBHOOK_SECRET === "") {
    throw new ConfigError("WEBHOOK_BEFORE_SEND_URL is set: WEBHOOK_SECRET is required (every call is signed with it)");
  }
  const log = deps.log.child({ use: "webhooks" });
  const events =
    endpoints.any && deps.outbox
      ? new OutboxWebhookEvents({ outbox: deps.outbox, endpoints, ids: deps.ids, log, metrics: deps.metrics })
      : undefined;
  const sender = hookUrl !== "" ? new HttpWebhookSender(config.WEBHOOK_SECRET) : undefined;
  const beforeSend = sender
    ? new HttpBeforeSendHook({
        url: hookUrl,
        sender,
        timeoutMs: config.WEBHOOK_BEFORE_SEND_TIMEOUT_MS,
        failOpen: config.WEBHOOK_BEFORE_SEND_FAIL_OPEN,
        maxTextChars: config.CHAT_MAX_TEXT_CHARS,
        log,
        metrics: deps.metrics,
      })
    : undefined;
  return { events, beforeSend, close: async () => sender?.close() };
}

/**
 * The webhook dispatcher of a chat node process (one per process, beside the retention purge),
 * started when an endpoint is configured or bots are enabled (then it also delivers to the bots,
 * which it reads from `bots`, and groups' bot members from `groups`); answers its stop, which
 * also closes its connections.
 */
export function startWebhookDispatcher(
  config: WebhookSettings,
  deps: {
    outbox: WebhookOutboxStore;
    bots?: Pick<BotStore, "list">;
    groups?: Pick<GroupStore, "memberUids">;
    locks?: JobLocks;
    log: Logger;
    metrics?: Metrics;
  },
): (() => Promise<void>) | undefined {
  const endpoints = webhookEndpoints(config);
  const withBots = botsOn(config) && deps.bots !== undefined && deps.groups !== undefined;
  if (!endpoints.any && !withBots) return undefined;
  const sender = new HttpWebhookSender(config.WEBHOOK_SECRET);
  const bots =
    withBots && deps.bots && deps.groups
      ? new CachedBotDirectory({ bots: deps.bots, groups: deps.groups, ttlMs: config.BOTS_CACHE_MS, log: deps.log })
      : undefined;
  const dispatcher = new WebhookDispatcher({
    outbox: deps.outbox,
    endpoints,
    bots,
    sender,
    settings: config,
    locks: deps.locks,
    log: deps.log,
    metrics: deps.metrics,
  });
  dispatcher.start();
  return async () => {
    await dispatcher.stop();
    await sender.close();
  };
}

import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import type { ConversationStore, GroupStore, PushDeviceStore, UserStore } from "../storage/ports.js";
import { apnsProviderFrom } from "./apns.js";
import { fcmProviderFrom } from "./fcm.js";
import { PushNotifier } from "./notifier.js";
import type { PushProvider } from "./ports.js";
import { webPushProviderFrom } from "./web-push.js";

/**
 * Every push provider the settings configure (none: an empty list). A half-configured one
 * (a VAPID public key without its private key) throws ConfigError at start.
 */
export function createPushProviders(config: Config, log: Logger): PushProvider[] {
  const configured: (PushProvider | undefined)[] = [
    webPushProviderFrom(config),
    fcmProviderFrom(config, log),
    apnsProviderFrom(config, log),
  ];
  const providers = configured.filter((p): p is PushProvider => p !== undefined);
  if (providers.length > 0) log.info({ providers: providers.map((p) => p.kind) }, "push notifications on");
  return providers;
}

/** The stores a notifier reads (compose's adapters have them all). */
export interface PushNotifierStores {
  pushDevices: PushDeviceStore;
  conversations: ConversationStore;
  users: UserStore;
  groups: GroupStore;
}

/**
 * A chat process's push notifier, or undefined when no provider is configured: then the chat
 * nodes get none and their fan-out collects no offline recipients (the hot path pays nothing).
 */
export function createPushNotifier(
  stores: PushNotifierStores,
  config: Config,
  log: Logger,
  metrics?: Metrics,
): PushNotifier | undefined {
  const providers = createPushProviders(config, log);
  if (providers.length === 0) return undefined;
  return new PushNotifier({
    providers,
    devices: stores.pushDevices,
    conversations: stores.conversations,
    users: stores.users,
    groups: stores.groups,
    settings: pushNotifierSettings(config),
    log: log.child({ use: "push" }),
    ...(metrics ? { metrics } : {}),
  });
}

/** The PUSH_* settings as the notifier takes them. */
export function pushNotifierSettings(config: Config) {
  return {
    queueMax: config.PUSH_QUEUE_MAX,
    concurrency: config.PUSH_CONCURRENCY,
    showPreview: config.PUSH_SHOW_PREVIEW,
    previewMaxChars: config.PUSH_PREVIEW_MAX_CHARS,
    ttlSeconds: config.PUSH_TTL_SECONDS,
    conversationListMax: config.CHAT_CONVERSATION_LIST_MAX,
    deviceCacheMs: config.PUSH_DEVICE_CACHE_MS,
    deviceCacheMax: config.PUSH_DEVICE_CACHE_MAX,
  };
}

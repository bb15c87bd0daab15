import { createHash } from "node:crypto";
import type { Agent } from "node:https";
import webpush from "web-push";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/settings.js";
import { HostList, parseSubscription } from "./devices.js";
import type { PushDevice, PushNotification, PushOutcome, PushProvider } from "./ports.js";

/** The settings Web Push reads. */
export type WebPushConfig = Pick<
  Config,
  | "WEB_PUSH_VAPID_PUBLIC_KEY"
  | "WEB_PUSH_VAPID_PRIVATE_KEY"
  | "WEB_PUSH_SUBJECT"
  | "WEB_PUSH_ENDPOINT_HOSTS"
  | "PUSH_SEND_TIMEOUT_MS"
>;

/**
 * What the service worker (web/src/sw.ts) receives, decrypted: enough to show the notification
 * and open the conversation. `tag` is the collapse key: a newer notification of the same
 * conversation replaces the shown one.
 */
export interface WebPushPayload {
  title: string;
  body: string;
  convId: string;
  seq: number;
  badge: number;
  tag: string;
}

/**
 * The Topic header of a conversation's notifications: a push service keeps only the newest
 * undelivered one per topic. At most 32 characters of the URL-safe base64 alphabet (RFC 8030),
 * which a conversation id ("p:1:2") is not: the first 32 of its SHA-256's base64url.
 */
export function topicOf(collapseKey: string): string {
  return createHash("sha256").update(collapseKey).digest("base64url").slice(0, 32);
}

/** Web Push is configured: both VAPID keys and the subject; a half-set configuration is an error. */
export function webPushConfigured(config: WebPushConfig): boolean {
  const { WEB_PUSH_VAPID_PUBLIC_KEY: pub, WEB_PUSH_VAPID_PRIVATE_KEY: priv, WEB_PUSH_SUBJECT: subject } = config;
  if (pub === "" && priv === "") return false;
  if (pub === "" || priv === "") {
    throw new ConfigError(
      "WEB_PUSH_VAPID_PUBLIC_KEY and WEB_PUSH_VAPID_PRIVATE_KEY go together (npm run push:vapid-keys)",
    );
  }
  if (subject === "") throw new ConfigError("WEB_PUSH_SUBJECT (mailto: or https:) is required with the VAPID keys");
  return true;
}

/** The Web Push provider, or undefined when its settings are empty. */
export function webPushProviderFrom(config: WebPushConfig): WebPushProvider | undefined {
  return webPushConfigured(config) ? new WebPushProvider(config) : undefined;
}

/**
 * Web Push (RFC 8030, 8291, 8292) with the `web-push` package: each notification's JSON
 * (WebPushPayload) encrypted (aes128gcm) to the subscription's keys, the request signed with
 * the VAPID key pair (a JWT for the endpoint's origin), TTL from PUSH_TTL_SECONDS and the Topic
 * of its conversation. An endpoint answering 404 or 410 no longer exists: gone. Only https
 * endpoints on WEB_PUSH_ENDPOINT_HOSTS are called (a subscription comes from a client).
 */
export class WebPushProvider implements PushProvider {
  readonly kind = "webpush" as const;
  readonly #vapid: { subject: string; publicKey: string; privateKey: string };
  readonly #hosts: HostList;
  readonly #timeoutMs: number;
  readonly #agent: Agent | undefined;

  /**
   * `agent`: the https.Agent requests go through (keep-alive is Node's default; a test passes
   * one that trusts its local push service's certificate).
   */
  constructor(config: WebPushConfig, options: { agent?: Agent } = {}) {
    this.#vapid = {
      subject: config.WEB_PUSH_SUBJECT,
      publicKey: config.WEB_PUSH_VAPID_PUBLIC_KEY,
      privateKey: config.WEB_PUSH_VAPID_PRIVATE_KEY,
    };
    // Fails at start on a malformed key pair or subject (web-push checks them as it signs).
    webpush.getVapidHeaders(
      "https://push.invalid",
      this.#vapid.subject,
      this.#vapid.publicKey,
      this.#vapid.privateKey,
      "aes128gcm",
    );
    this.#hosts = new HostList(config.WEB_PUSH_ENDPOINT_HOSTS);
    this.#timeoutMs = config.PUSH_SEND_TIMEOUT_MS;
    this.#agent = options.agent;
  }

  async send(device: PushDevice, notification: PushNotification): Promise<PushOutcome> {
    let subscription: ReturnType<typeof parseSubscription>;
    try {
      subscription = parseSubscription(device.token, this.#hosts);
    } catch (err) {
      return { kind: "failed", reason: (err as Error).message };
    }
    const payload: WebPushPayload = {
      title: notification.title,
      body: notification.body,
      convId: notification.convId,
      seq: notification.seq,
      badge: notification.badge,
      tag: notification.collapseKey,
    };
    try {
      await webpush.sendNotification(subscription, JSON.stringify(payload), {
        vapidDetails: this.#vapid,
        TTL: notification.ttlSeconds,
        topic: topicOf(notification.collapseKey),
        urgency: "high",
        timeout: this.#timeoutMs,
        ...(this.#agent ? { agent: this.#agent } : {}),
      });
      return { kind: "sent" };
    } catch (err) {
      const status = (err as { statusCode?: unknown }).statusCode;
      if (status === 404 || status === 410) return { kind: "gone" };
      const reason = typeof status === "number" ? `push service answered ${status}` : (err as Error).message;
      return { kind: "failed", reason };
    }
  }
}

import type { Uid } from "../storage/ports.js";

/** The push services a device can be reached by when the app is closed. */
export type PushProviderKind = "webpush" | "fcm" | "apns";

/**
 * A device registered for push (one per user and device id): the provider, and what that
 * provider addresses it by (a Web Push subscription as JSON, an FCM registration token, an
 * APNs device token).
 */
export interface PushDevice {
  uid: Uid;
  deviceId: string;
  provider: PushProviderKind;
  token: string;
}

/**
 * One notification, already shaped by the privacy setting: `body` is the preview, or a neutral
 * text when previews are off. `collapseKey` (the conversation) lets the provider keep only the
 * latest of a conversation's pending notifications; `badge` is the user's total unread.
 */
export interface PushNotification {
  title: string;
  body: string;
  convId: string;
  seq: number;
  collapseKey: string;
  badge: number;
  /** Seconds the provider may hold it for an unreachable device. */
  ttlSeconds: number;
}

/**
 * What a provider said about one delivery: `gone` when the device is no longer registered with
 * it (the token is then dropped), `failed` for anything else (logged and counted; not retried:
 * the message itself is stored and reaches the app by sync).
 */
export type PushOutcome = { kind: "sent" } | { kind: "gone" } | { kind: "failed"; reason: string };

/** One push service (Web Push, FCM HTTP v1, APNs), as an adapter. */
export interface PushProvider {
  readonly kind: PushProviderKind;
  send(device: PushDevice, notification: PushNotification): Promise<PushOutcome>;
  close?(): Promise<void>;
}

import type { GateClient } from "@shardchat/sdk";

/**
 * Web Push for this browser (issue 18): the service worker (sw.ts, served as /sw.js) shows what
 * the chat nodes push while no tab of this user is connected; the subscription is registered
 * with gate under a device id kept in this browser. Permission is asked only from a click.
 */

/** What the notifications card says: what the browser and this deployment allow, and whether it is on. */
export type PushState = "unsupported" | "unavailable" | "denied" | "off" | "on";

const DEVICE_KEY = "shardchat.pushDevice";
type Auth = { uid: string; token: string };

export function pushSupported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** This browser's device id (kept across logins, so a re-subscription replaces its row). */
export function pushDeviceId(): string {
  let id = localStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `web-${crypto.randomUUID()}`;
    localStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function worker(): Promise<ServiceWorkerRegistration> {
  // The dev server serves the source as a module; the build writes it to the web root, whose scope is the app's.
  return import.meta.env.DEV
    ? navigator.serviceWorker.register("/src/sw.ts", { type: "module", scope: "/" })
    : navigator.serviceWorker.register("/sw.js", { scope: "/" });
}

export async function pushState(gate: GateClient): Promise<PushState> {
  if (!pushSupported()) return "unsupported";
  const { webPushPublicKey } = await gate.pushConfig().catch(() => ({ webPushPublicKey: "" }));
  if (!webPushPublicKey) return "unavailable";
  if (Notification.permission === "denied") return "denied";
  if (Notification.permission !== "granted") return "off";
  const registration = await navigator.serviceWorker.getRegistration("/");
  return (await registration?.pushManager.getSubscription()) ? "on" : "off";
}

/** Asks permission (call it from a click), subscribes with gate's VAPID key and registers the subscription. */
export async function enablePush(gate: GateClient, auth: Auth): Promise<PushState> {
  const { webPushPublicKey } = await gate.pushConfig();
  if (!webPushPublicKey) return "unavailable";
  if ((await Notification.requestPermission()) !== "granted")
    return Notification.permission === "denied" ? "denied" : "off";
  const registration = await worker();
  await navigator.serviceWorker.ready;
  const key = fromBase64Url(webPushPublicKey);
  let subscription = await registration.pushManager.getSubscription();
  // Made for an older key pair (the deployment made a new one): its push service refuses us.
  if (subscription && !sameBytes(subscription.options.applicationServerKey, key)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await gate.registerPushDevice(auth, {
    deviceId: pushDeviceId(),
    provider: "webpush",
    token: JSON.stringify(subscription.toJSON()),
  });
  return "on";
}

/** Unsubscribes this browser and removes its registration. */
export async function disablePush(gate: GateClient, auth: Auth): Promise<PushState> {
  const registration = await navigator.serviceWorker.getRegistration("/");
  await (await registration?.pushManager.getSubscription())?.unsubscribe();
  await gate.unregisterPushDevice(auth, pushDeviceId());
  return "off";
}

/**
 * When the app opens logged in: a subscription this user made registers again (the push service
 * may have rotated it meanwhile). Asks nothing; a logout removed the subscription.
 */
export async function renewPush(gate: GateClient, auth: Auth): Promise<void> {
  if (!pushSupported() || Notification.permission !== "granted") return;
  const registration = await navigator.serviceWorker.getRegistration("/");
  const subscription = await registration?.pushManager.getSubscription();
  if (!subscription) return;
  await gate.registerPushDevice(auth, {
    deviceId: pushDeviceId(),
    provider: "webpush",
    token: JSON.stringify(subscription.toJSON()),
  });
}

/**
 * At logout, while the token still works: the registration goes and the subscription too, so the
 * next user of this browser gets none of this one's notifications and turns them on itself.
 */
export async function forgetPushDevice(gate: GateClient, auth: Auth): Promise<void> {
  if (!pushSupported() || !localStorage.getItem(DEVICE_KEY)) return;
  await gate.unregisterPushDevice(auth, pushDeviceId()).catch(() => false);
  const registration = await navigator.serviceWorker.getRegistration("/");
  await (await registration?.pushManager.getSubscription())?.unsubscribe().catch(() => false);
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text
    .replace(/-/g, "+")
    .replace(/_/g, "/")
    .padEnd(Math.ceil(text.length / 4) * 4, "=");
  const binary = atob(base64);
  const bytes = new Uint8Array(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function sameBytes(a: ArrayBuffer | null, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false;
  const view = new Uint8Array(a);
  return view.every((byte, i) => byte === b[i]);
}

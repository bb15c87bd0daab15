import { AppError, ErrorCode } from "../errors.js";
import type { PushProviderKind } from "./ports.js";

/** A device id as clients choose it (a UUID, an install id): the column is VARCHAR(64) ascii. */
export const PUSH_DEVICE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export const PUSH_PROVIDERS: readonly PushProviderKind[] = ["webpush", "fcm", "apns"];

/** A Web Push subscription as browsers make it (PushSubscription.toJSON()), the part we keep. */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** What a registration is checked against: gate's settings. */
export interface DeviceRules {
  tokenMaxBytes: number;
  /** Which hosts a Web Push endpoint may name (WEB_PUSH_ENDPOINT_HOSTS). */
  webPushHosts: HostList;
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;
/** An FCM registration token: printable ASCII, no spaces (Google keeps its format open). */
const FCM_TOKEN = /^[\x21-\x7e]+$/;
/** An APNs device token: hex (32 bytes today; Apple asks not to rely on the length). */
const APNS_TOKEN = /^(?:[0-9a-fA-F]{2}){16,100}$/;

/**
 * A device registration checked at the edge: the token in the form it is stored in (a Web Push
 * subscription re-serialized with only its endpoint and keys, an APNs token lower-cased).
 * INVALID_ARGUMENT for a malformed one, PAYLOAD_TOO_LARGE past tokenMaxBytes.
 */
export function checkedToken(provider: PushProviderKind, token: string, rules: DeviceRules): string {
  if (Buffer.byteLength(token, "utf8") > rules.tokenMaxBytes) {
    throw new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `token is over ${rules.tokenMaxBytes} bytes`);
  }
  switch (provider) {
    case "webpush":
      return JSON.stringify(parseSubscription(token, rules.webPushHosts));
    case "fcm":
      if (!FCM_TOKEN.test(token)) throw invalid("an FCM token is printable ASCII without spaces");
      return token;
    case "apns":
      if (!APNS_TOKEN.test(token)) throw invalid("an APNs token is hex (32..200 bytes)");
      return token.toLowerCase();
  }
}

/**
 * A subscription's JSON text as a checked WebPushSubscription: an https endpoint on an allowed
 * host, p256dh a P-256 point (65 bytes, uncompressed), auth 16 bytes. INVALID_ARGUMENT otherwise.
 */
export function parseSubscription(json: string, hosts: HostList): WebPushSubscription {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw invalid("a webpush token is a PushSubscription as JSON");
  }
  const s = value as { endpoint?: unknown; keys?: { p256dh?: unknown; auth?: unknown } } | null;
  if (typeof s !== "object" || s === null || typeof s.endpoint !== "string") {
    throw invalid("a webpush subscription needs an endpoint");
  }
  let url: URL;
  try {
    url = new URL(s.endpoint);
  } catch {
    throw invalid("the subscription's endpoint is not a URL");
  }
  if (url.protocol !== "https:") throw invalid("the subscription's endpoint must be https");
  if (!hosts.allows(url.hostname)) throw invalid(`push service ${url.hostname} is not allowed here`);
  const p256dh = s.keys?.p256dh;
  const auth = s.keys?.auth;
  if (typeof p256dh !== "string" || !BASE64URL.test(p256dh)) throw invalid("keys.p256dh must be base64url");
  if (typeof auth !== "string" || !BASE64URL.test(auth)) throw invalid("keys.auth must be base64url");
  const point = Buffer.from(p256dh, "base64url");
  if (point.length !== 65 || point[0] !== 4) throw invalid("keys.p256dh must be an uncompressed P-256 point");
  if (Buffer.from(auth, "base64url").length !== 16) throw invalid("keys.auth must be 16 bytes");
  return { endpoint: s.endpoint, keys: { p256dh, auth } };
}

/** Host names as a list of exact names and "*.suffix" patterns (compared lower-case). */
export class HostList {
  readonly #exact = new Set<string>();
  readonly #suffixes: string[] = [];

  constructor(list: string) {
    for (const entry of list.split(",")) {
      const host = entry.trim().toLowerCase();
      if (host === "") continue;
      if (host.startsWith("*.")) this.#suffixes.push(host.slice(1));
      else this.#exact.add(host);
    }
  }

  allows(hostname: string): boolean {
    const host = hostname.toLowerCase();
    return this.#exact.has(host) || this.#suffixes.some((suffix) => host.endsWith(suffix));
  }
}

function invalid(message: string): AppError {
  return new AppError(ErrorCode.INVALID_ARGUMENT, message);
}

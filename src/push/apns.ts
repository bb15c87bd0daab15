import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import apn from "@parse/node-apn";
import { ConfigError } from "../config/load.js";
import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import type { PushDevice, PushNotification, PushOutcome, PushProvider } from "./ports.js";

/** The settings APNs reads. */
export type ApnsConfig = Pick<
  Config,
  | "APNS_KEY_FILE"
  | "APNS_KEY_ID"
  | "APNS_TEAM_ID"
  | "APNS_TOPIC"
  | "APNS_HOST"
  | "APNS_CA_FILE"
  | "PUSH_SEND_TIMEOUT_MS"
>;

/**
 * The APNs provider, or undefined when APNS_KEY_FILE is empty. A key file without its key id,
 * team id or topic, or one that does not load, throws ConfigError at start.
 */
export function apnsProviderFrom(config: ApnsConfig, log: Logger): ApnsProvider | undefined {
  if (config.APNS_KEY_FILE === "") return undefined;
  const missing = (["APNS_KEY_ID", "APNS_TEAM_ID", "APNS_TOPIC"] as const).filter((name) => config[name] === "");
  if (missing.length > 0) throw new ConfigError(`APNS_KEY_FILE needs ${missing.join(", ")} too`);
  return new ApnsProvider(config, log);
}

/**
 * Apple's answers that say the token itself is dead: the app was removed (410 Unregistered) or
 * the token is not one (400 BadDeviceToken, also what a sandbox token gets from the production
 * host). Other refusals (DeviceTokenNotForTopic, InvalidProviderToken, TooManyRequests) come from
 * our configuration or Apple's state, and must not drop every user's devices.
 */
const GONE = new Set(["410 Unregistered", "400 BadDeviceToken"]);

/**
 * APNs with token-based authentication, through `@parse/node-apn`: one HTTP/2 connection to
 * APNS_HOST, reused for every notification; each request carries an ES256 JWT signed with the
 * .p8 key (kid APNS_KEY_ID, iss APNS_TEAM_ID), made once and replaced after 55 minutes (Apple
 * refuses one older than an hour, and one renewed more often than every 20 minutes), or at once
 * when Apple answers ExpiredProviderToken. A 5xx or a 429 is tried once more; anything else fails.
 */
export class ApnsProvider implements PushProvider {
  readonly kind = "apns" as const;
  readonly #provider: apn.Provider;
  readonly #topic: string;
  readonly #log: Logger;
  /** A refusal of our key or topic was logged and no send succeeded since: one warning, not one per device. */
  #warned = false;

  constructor(config: ApnsConfig, log: Logger) {
    const { hostname, port } = hostAndPort(config.APNS_HOST);
    let key: Buffer;
    let ca: Buffer[] | undefined;
    try {
      key = readFileSync(config.APNS_KEY_FILE);
      // Beside Node's CAs, not instead: a private server may sit behind either.
      ca =
        config.APNS_CA_FILE === ""
          ? undefined
          : [...rootCertificates.map((c) => Buffer.from(c)), readFileSync(config.APNS_CA_FILE)];
    } catch (err) {
      throw new ConfigError(`APNs: ${(err as Error).message}`);
    }
    try {
      // The library signs its first token here: a key that is not an EC P-256 key fails now, not at the first send.
      this.#provider = new apn.Provider({
        token: { key, keyId: config.APNS_KEY_ID, teamId: config.APNS_TEAM_ID },
        address: hostname,
        port,
        ...(ca ? { ca } : {}),
        requestTimeout: config.PUSH_SEND_TIMEOUT_MS,
        connectionRetryLimit: 1,
      });
    } catch (err) {
      throw new ConfigError(`APNS_KEY_FILE ${config.APNS_KEY_FILE}: ${(err as Error).message}`);
    }
    this.#topic = config.APNS_TOPIC;
    this.#log = log;
  }

  async send(device: PushDevice, n: PushNotification): Promise<PushOutcome> {
    const note = new apn.Notification();
    note.topic = this.#topic;
    note.pushType = "alert";
    note.priority = 10;
    note.collapseId = n.collapseKey;
    note.expiry = apnsExpiration(n.ttlSeconds);
    note.alert = { title: n.title, body: n.body };
    note.badge = n.badge;
    note.sound = "default";
    note.payload = { convId: n.convId, seq: n.seq };
    let result: Awaited<ReturnType<apn.Provider["send"]>>;
    try {
      result = await this.#provider.send(note, device.token);
    } catch (err) {
      return { kind: "failed", reason: `APNs: ${(err as Error).message}` };
    }
    const failure = result.failed[0];
    if (!failure) {
      this.#warned = false;
      return { kind: "sent" };
    }
    const reason = failure.response?.reason;
    if (failure.status !== undefined && reason !== undefined) {
      const answer = `${failure.status} ${reason}`;
      if (GONE.has(answer)) return { kind: "gone" };
      if ((reason === "InvalidProviderToken" || reason === "DeviceTokenNotForTopic") && !this.#warned) {
        // Every APNs send fails the same way until the settings are fixed.
        this.#warned = true;
        this.#log.warn({ reason }, "APNs refuses our key or topic: check APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC");
      }
      return { kind: "failed", reason: `APNs answered ${answer}` };
    }
    const status = failure.status === undefined ? "" : ` ${failure.status}`;
    return { kind: "failed", reason: `APNs${status}: ${failure.error?.message ?? "no answer"}` };
  }

  async close(): Promise<void> {
    await this.#provider.shutdown();
  }
}

/** apns-expiration for a TTL (also sent through FCM): a UNIX time, or 0 (deliver now or never) for none. */
export function apnsExpiration(ttlSeconds: number): number {
  return ttlSeconds === 0 ? 0 : Math.floor(Date.now() / 1000) + ttlSeconds;
}

/** "host" or "host:port" (a private or test server); 443 when no port is given. */
function hostAndPort(value: string): { hostname: string; port: number } {
  const match = /^(.+?)(?::(\d{1,5}))?$/.exec(value);
  return { hostname: match?.[1] ?? value, port: match?.[2] ? Number(match[2]) : 443 };
}

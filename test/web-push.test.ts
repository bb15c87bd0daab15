import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import webpush from "web-push";
import { ConfigError, loadConfig } from "../src/config/load.js";
import type { Config } from "../src/config/settings.js";
import { createLogger } from "../src/log/logger.js";
import { createPushProviders } from "../src/push/create.js";
import type { PushDevice } from "../src/push/ports.js";
import { topicOf, WebPushProvider } from "../src/push/web-push.js";
import { notification } from "./helpers/push-notification.js";
import { startWebPushReceiver, type TestSubscription, type WebPushReceiver } from "./helpers/web-push-receiver.js";

/**
 * The Web Push adapter against a local push service (test/helpers/web-push-receiver.ts) that
 * checks the VAPID JWT and decrypts the aes128gcm body with the subscription's own keys, as a
 * browser would: no stub stands in for the protocol.
 */
const keys = webpush.generateVAPIDKeys();
let receiver: WebPushReceiver;
let config: Config;
let provider: WebPushProvider;

const deviceOf = (sub: TestSubscription): PushDevice => ({
  uid: "1002",
  deviceId: sub.id.slice(0, 8),
  provider: "webpush",
  token: JSON.stringify(sub.json),
});

beforeAll(async () => {
  receiver = await startWebPushReceiver({ vapidPublicKey: keys.publicKey });
  config = loadConfig({
    LOG_LEVEL: "warn",
    WEB_PUSH_VAPID_PUBLIC_KEY: keys.publicKey,
    WEB_PUSH_VAPID_PRIVATE_KEY: keys.privateKey,
    WEB_PUSH_SUBJECT: "mailto:ops@example.com",
    WEB_PUSH_ENDPOINT_HOSTS: receiver.host,
  });
  provider = new WebPushProvider(config, { agent: receiver.agent });
});

afterAll(async () => {
  await receiver?.close();
});

describe("Web Push adapter", () => {
  it("delivers a payload the subscription's keys decrypt, signed with VAPID, with TTL and Topic", async () => {
    const sub = receiver.subscribe();
    expect(await provider.send(deviceOf(sub), notification())).toEqual({ kind: "sent" });
    const [push] = receiver.of(sub.id);
    expect(push?.payload).toEqual({
      title: "alice",
      body: "hello there",
      convId: "p:1001:1002",
      seq: 7,
      badge: 3,
      tag: "p:1001:1002",
    });
    expect(push?.ttl).toBe(600);
    expect(push?.urgency).toBe("high");
    expect(push?.topic).toBe(topicOf("p:1001:1002"));
    expect(receiver.refused).toEqual([]);
  });

  it("collapses per conversation: one Topic per conversation id, at most 32 URL-safe characters", async () => {
    const sub = receiver.subscribe();
    const convs = ["p:1001:1002", "p:1001:1002", "g:5550001", `g:${"9".repeat(20)}`];
    for (const [i, convId] of convs.entries()) {
      expect(await provider.send(deviceOf(sub), notification({ convId, collapseKey: convId, seq: i + 1 }))).toEqual({
        kind: "sent",
      });
    }
    const topics = receiver.of(sub.id).map((p) => p.topic ?? "");
    expect(topics).toHaveLength(4);
    for (const topic of topics) expect(topic).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(topics[0]).toBe(topics[1]);
    expect(new Set(topics).size).toBe(3);
  });

  it("answers gone for an endpoint that says 410 or 404, failed for a refused VAPID key", async () => {
    const sub = receiver.subscribe();
    receiver.markGone(sub.id);
    expect(await provider.send(deviceOf(sub), notification())).toEqual({ kind: "gone" });
    const unknown = {
      ...deviceOf(sub),
      token: JSON.stringify({ ...sub.json, endpoint: `${receiver.origin}/push/nobody` }),
    };
    expect(await provider.send(unknown, notification())).toEqual({ kind: "gone" });

    // Signed with another key pair than the subscription was made for: the service refuses it.
    const other = webpush.generateVAPIDKeys();
    const stranger = new WebPushProvider(
      { ...config, WEB_PUSH_VAPID_PUBLIC_KEY: other.publicKey, WEB_PUSH_VAPID_PRIVATE_KEY: other.privateKey },
      { agent: receiver.agent },
    );
    const fresh = receiver.subscribe();
    expect(await stranger.send(deviceOf(fresh), notification())).toMatchObject({ kind: "failed" });
    expect(receiver.refused.at(-1)).toMatchObject({ subscriptionId: fresh.id, status: 403 });
    expect(receiver.of(fresh.id)).toEqual([]);
  });

  it("calls no endpoint off WEB_PUSH_ENDPOINT_HOSTS, nor plain http", async () => {
    const sub = receiver.subscribe();
    const before = receiver.received.length + receiver.refused.length;
    const elsewhere = new WebPushProvider(
      { ...config, WEB_PUSH_ENDPOINT_HOSTS: "push.example.com" },
      {
        agent: receiver.agent,
      },
    );
    expect(await elsewhere.send(deviceOf(sub), notification())).toMatchObject({ kind: "failed" });
    const http = {
      ...deviceOf(sub),
      token: JSON.stringify({ ...sub.json, endpoint: sub.json.endpoint.replace("https:", "http:") }),
    };
    expect(await provider.send(http, notification())).toMatchObject({ kind: "failed" });
    expect(receiver.received.length + receiver.refused.length).toBe(before);
  });

  it("npm run push:vapid-keys prints a key pair that signs what a push service accepts", async () => {
    const printed = execFileSync(process.execPath, ["--import", "tsx", "src/push/vapid-keys-cli.ts"], {
      cwd: join(import.meta.dirname, ".."),
      encoding: "utf8",
    });
    const env = Object.fromEntries(
      printed
        .split("\n")
        .filter((line) => /^WEB_PUSH_[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
    );
    expect(Object.keys(env).sort()).toEqual([
      "WEB_PUSH_SUBJECT",
      "WEB_PUSH_VAPID_PRIVATE_KEY",
      "WEB_PUSH_VAPID_PUBLIC_KEY",
    ]);
    const own = await startWebPushReceiver({ vapidPublicKey: env.WEB_PUSH_VAPID_PUBLIC_KEY ?? "" });
    try {
      const signer = new WebPushProvider({ ...config, ...env }, { agent: own.agent });
      const sub = own.subscribe();
      expect(await signer.send(deviceOf(sub), notification())).toEqual({ kind: "sent" });
      expect(own.of(sub.id)).toHaveLength(1);
    } finally {
      await own.close();
    }
  });

  it("is configured only with both VAPID keys and a subject; half a configuration stops the start", () => {
    const log = createLogger("web-push-test", "silent");
    const base = loadConfig({ LOG_LEVEL: "warn" });
    expect(createPushProviders(base, log)).toEqual([]);
    expect(createPushProviders(config, log).map((p) => p.kind)).toEqual(["webpush"]);
    expect(() => createPushProviders({ ...config, WEB_PUSH_VAPID_PRIVATE_KEY: "" }, log)).toThrow(ConfigError);
    expect(() => createPushProviders({ ...config, WEB_PUSH_SUBJECT: "" }, log)).toThrow(ConfigError);
    expect(() => createPushProviders({ ...config, WEB_PUSH_VAPID_PRIVATE_KEY: "AAAA" }, log)).toThrow();
  });
});

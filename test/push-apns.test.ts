import { execFileSync } from "node:child_process";
import { generateKeyPairSync, type KeyObject, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, loadConfig } from "../src/config/load.js";
import type { Config } from "../src/config/settings.js";
import { createLogger } from "../src/log/logger.js";
import { ApnsProvider, apnsProviderFrom } from "../src/push/apns.js";
import { createPushProviders } from "../src/push/create.js";
import type { PushDevice } from "../src/push/ports.js";
import { notification } from "./helpers/push-notification.js";

/**
 * The APNs adapter against a local HTTP/2 server over TLS (a self-signed certificate made by
 * openssl) that speaks Apple's provider API: it checks the ES256 provider token with the .p8
 * key's public half (kid, iss, iat), the path and the apns-* headers, and the payload, and
 * answers as Apple does: 200 with an apns-id, 410 Unregistered, 400 BadDeviceToken, 400
 * DeviceTokenNotForTopic, 403 InvalidProviderToken.
 */
const KEY_ID = "ABC123DEFG";
const TEAM_ID = "TEAM123456";
const TOPIC = "com.example.shardchat";
const GONE_TOKEN = "00".repeat(32);
const BAD_TOKEN = "0b".repeat(32);
const log = createLogger("test", "silent");

interface ApnsRequest {
  token: string;
  headers: Record<string, string | string[] | undefined>;
  jwt: string;
  body: any;
}

interface FakeApns {
  port: number;
  requests: ApnsRequest[];
  /** Refusals of the provider token or of the request's shape, by Apple's reason. */
  refusals: string[];
  /** HTTP/2 connections opened to it so far. */
  sessions: number;
  close(): Promise<void>;
}

async function startFakeApns(cert: Buffer, key: Buffer, providerKey: KeyObject): Promise<FakeApns> {
  const state = { requests: [] as ApnsRequest[], refusals: [] as string[], sessions: 0 };
  const open = new Set<ServerHttp2Session>();
  const server: Http2SecureServer = createSecureServer({ cert, key });
  server.on("session", (session) => {
    state.sessions += 1;
    open.add(session);
    session.on("close", () => open.delete(session));
  });
  server.on("stream", (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      const answer = (status: number, reason?: string) => {
        if (reason) state.refusals.push(reason);
        stream.respond({ ":status": status, "content-type": "application/json", "apns-id": crypto.randomUUID() });
        stream.end(reason ? JSON.stringify({ reason, ...(status === 410 ? { timestamp: Date.now() } : {}) }) : "");
      };
      const path = /^\/3\/device\/([0-9a-f]+)$/.exec(String(headers[":path"]));
      if (headers[":method"] !== "POST" || !path?.[1]) return answer(404, "BadPath");
      const jwt = /^bearer (.+)$/.exec(String(headers.authorization ?? ""))?.[1] ?? "";
      if (!validProviderToken(jwt, providerKey)) return answer(403, "InvalidProviderToken");
      let body: any;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return answer(400, "PayloadEmpty");
      }
      if (headers["apns-topic"] !== TOPIC) return answer(400, "DeviceTokenNotForTopic");
      if (headers["apns-push-type"] !== "alert") return answer(400, "InvalidPushType");
      if (!headers["apns-collapse-id"]) return answer(400, "BadCollapseId");
      if (typeof body?.aps?.badge !== "number") return answer(400, "BadMessage");
      const token = path[1];
      state.requests.push({ token, headers: { ...headers }, jwt, body });
      if (token === GONE_TOKEN) return answer(410, "Unregistered");
      if (token === BAD_TOKEN) return answer(400, "BadDeviceToken");
      answer(200);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const fake = {
    port: (server.address() as AddressInfo).port,
    get requests() {
      return state.requests;
    },
    get refusals() {
      return state.refusals;
    },
    get sessions() {
      return state.sessions;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of open) session.destroy();
        server.close(() => resolve());
      }),
  };
  return fake;
}

/** Apple's check of a provider token: ES256 over header.claims with the key's public half, kid and iss ours, iat within the hour. */
function validProviderToken(jwt: string, publicKey: KeyObject): boolean {
  const [h, c, s] = jwt.split(".");
  if (!h || !c || !s) return false;
  const header = JSON.parse(Buffer.from(h, "base64url").toString()) as Record<string, unknown>;
  const claims = JSON.parse(Buffer.from(c, "base64url").toString()) as Record<string, unknown>;
  const signed = verify(
    "sha256",
    Buffer.from(`${h}.${c}`),
    { key: publicKey, dsaEncoding: "ieee-p1363" },
    Buffer.from(s, "base64url"),
  );
  const age = Date.now() / 1000 - Number(claims.iat);
  return signed && header.alg === "ES256" && header.kid === KEY_ID && claims.iss === TEAM_ID && age > -60 && age < 3600;
}

const device = (token: string): PushDevice => ({ uid: "1002", deviceId: "iphone-1", provider: "apns", token });
const tokenOf = (n: number) => n.toString(16).padStart(64, "a");

let dir: string;
let apns: FakeApns;
let keyFile: string;
let caFile: string;
const providerKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const providers: ApnsProvider[] = [];

const writeKey = (name: string, pem: string | Buffer): string => {
  const file = join(dir, name);
  writeFileSync(file, pem);
  return file;
};
const configWith = (over: Record<string, string> = {}): Config =>
  loadConfig({
    LOG_LEVEL: "warn",
    APNS_KEY_FILE: keyFile,
    APNS_KEY_ID: KEY_ID,
    APNS_TEAM_ID: TEAM_ID,
    APNS_TOPIC: TOPIC,
    APNS_HOST: `localhost:${apns.port}`,
    APNS_CA_FILE: caFile,
    PUSH_SEND_TIMEOUT_MS: "3000",
    ...over,
  });
const providerWith = (over: Record<string, string> = {}): ApnsProvider => {
  const provider = new ApnsProvider(configWith(over), log);
  providers.push(provider);
  return provider;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-apns-"));
  const certFile = join(dir, "server.pem");
  const serverKeyFile = join(dir, "server.key");
  // biome-ignore format: one openssl option per line
  execFileSync("/usr/bin/openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", serverKeyFile, "-out", certFile, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ], { stdio: "pipe" });
  caFile = certFile;
  keyFile = writeKey("AuthKey_ABC123DEFG.p8", providerKey.privateKey.export({ type: "pkcs8", format: "pem" }));
  apns = await startFakeApns(readFileSync(certFile), readFileSync(serverKeyFile), providerKey.publicKey);
});

afterEach(() => {
  vi.useRealTimers();
});

afterAll(async () => {
  await Promise.all(providers.map((p) => p.close()));
  await apns?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("APNs adapter", () => {
  it("posts an alert to /3/device/<token> with the provider token, topic, push type, collapse id, expiration and priority", async () => {
    const provider = providerWith();
    expect(await provider.send(device(tokenOf(1)), notification())).toEqual({ kind: "sent" });
    expect(apns.refusals).toEqual([]);
    const request = apns.requests.at(-1);
    expect(request?.token).toBe(tokenOf(1));
    expect(request?.headers).toMatchObject({
      "apns-topic": TOPIC,
      "apns-push-type": "alert",
      "apns-collapse-id": "p:1001:1002",
      "apns-priority": "10",
    });
    const expiration = Number(request?.headers["apns-expiration"]);
    expect(Math.abs(expiration - (Date.now() / 1000 + 600))).toBeLessThan(5);
    expect(request?.body).toEqual({
      aps: { alert: { title: "alice", body: "hello there" }, badge: 3, sound: "default" },
      convId: "p:1001:1002",
      seq: 7,
    });
  });

  it("reuses one connection and one provider token, and signs a new token before the hour is out", async () => {
    const provider = providerWith();
    const sessionsBefore = apns.sessions;
    const from = apns.requests.length;
    const outcomes = await Promise.all([2, 3, 4].map((n) => provider.send(device(tokenOf(n)), notification())));
    expect(outcomes).toEqual(Array(3).fill({ kind: "sent" }));
    expect(await provider.send(device(tokenOf(5)), notification({ badge: 4 }))).toEqual({ kind: "sent" });
    expect(apns.sessions).toBe(sessionsBefore + 1);
    const jwts = new Set(apns.requests.slice(from).map((r) => r.jwt));
    expect(jwts.size).toBe(1);

    // This process's clock, so the local server's too: 30 minutes on, the same token (Apple refuses
    // renewals more often than every 20 minutes); 56 minutes on, a fresh one; still one connection.
    const start = Date.now();
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(start + 30 * 60_000);
    expect(await provider.send(device(tokenOf(11)), notification())).toEqual({ kind: "sent" });
    expect(jwts.has(apns.requests.at(-1)?.jwt ?? "")).toBe(true);
    vi.setSystemTime(start + 56 * 60_000);
    expect(await provider.send(device(tokenOf(6)), notification())).toEqual({ kind: "sent" });
    const renewed = apns.requests.at(-1)?.jwt ?? "";
    expect(jwts.has(renewed)).toBe(false);
    expect(apns.refusals).toEqual([]);
    expect(apns.sessions).toBe(sessionsBefore + 1);
  });

  it("answers gone for 410 Unregistered and 400 BadDeviceToken", async () => {
    const provider = providerWith();
    expect(await provider.send(device(GONE_TOKEN), notification())).toEqual({ kind: "gone" });
    expect(await provider.send(device(BAD_TOKEN), notification())).toEqual({ kind: "gone" });
  });

  it("fails without dropping the device when Apple refuses our topic or our key", async () => {
    const wrongTopic = await providerWith({ APNS_TOPIC: "com.example.other" }).send(device(tokenOf(7)), notification());
    expect(wrongTopic).toEqual({ kind: "failed", reason: "APNs answered 400 DeviceTokenNotForTopic" });

    const otherKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const otherKeyFile = writeKey("AuthKey_other.p8", otherKey.privateKey.export({ type: "pkcs8", format: "pem" }));
    const wrongKey = await providerWith({ APNS_KEY_FILE: otherKeyFile }).send(device(tokenOf(8)), notification());
    expect(wrongKey).toEqual({ kind: "failed", reason: "APNs answered 403 InvalidProviderToken" });
    expect(apns.refusals.slice(-2)).toEqual(["DeviceTokenNotForTopic", "InvalidProviderToken"]);
  });

  it("fails against a server whose certificate it does not trust, and against none", async () => {
    const untrusted = await providerWith({ APNS_CA_FILE: "" }).send(device(tokenOf(9)), notification());
    expect(untrusted).toMatchObject({ kind: "failed", reason: expect.stringMatching(/self-signed certificate/) });
    const closed = await providerWith({ APNS_HOST: "127.0.0.1:1", PUSH_SEND_TIMEOUT_MS: "1000" }).send(
      device(tokenOf(10)),
      notification(),
    );
    expect(closed).toMatchObject({ kind: "failed", reason: expect.stringMatching(/ECONNREFUSED/) });
    expect(apns.requests.some((r) => r.token === tokenOf(9))).toBe(false);
  });

  it("is off without a key file; a key without its id, team or topic, or a file that is no key, stops the start", () => {
    expect(apnsProviderFrom(loadConfig({ LOG_LEVEL: "warn" }), log)).toBeUndefined();
    expect(() => apnsProviderFrom(configWith({ APNS_KEY_ID: "" }), log)).toThrow(/APNS_KEY_ID/);
    expect(() => apnsProviderFrom(configWith({ APNS_TOPIC: "", APNS_TEAM_ID: "" }), log)).toThrow(
      /APNS_TEAM_ID, APNS_TOPIC/,
    );
    expect(() => apnsProviderFrom(configWith({ APNS_KEY_FILE: join(dir, "missing.p8") }), log)).toThrow(ConfigError);
    const notAKey = writeKey("not-a-key.p8", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    expect(() => apnsProviderFrom(configWith({ APNS_KEY_FILE: notAKey }), log)).toThrow(ConfigError);
    expect(() => loadConfig({ APNS_HOST: "https://api.push.apple.com/" })).toThrow(ConfigError);
  });

  it("createPushProviders builds FCM and APNs from their settings", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const account = writeKey(
      "account.json",
      JSON.stringify({
        project_id: "p",
        client_email: "push@p.iam.gserviceaccount.com",
        private_key: rsa.privateKey.export({ type: "pkcs8", format: "pem" }),
        token_uri: "http://127.0.0.1:1/token",
      }),
    );
    const built = createPushProviders({ ...configWith(), FCM_SERVICE_ACCOUNT_FILE: account }, log);
    try {
      expect(built.map((p) => p.kind)).toEqual(["fcm", "apns"]);
    } finally {
      await Promise.all(built.map((p) => p.close?.()));
    }
  });
});

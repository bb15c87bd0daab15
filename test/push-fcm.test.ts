import { generateKeyPairSync, type KeyObject, verify } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, loadConfig } from "../src/config/load.js";
import { createLogger } from "../src/log/logger.js";
import { FCM_SCOPE, FcmProvider, fcmProviderFrom } from "../src/push/fcm.js";
import type { PushDevice } from "../src/push/ports.js";
import { notification } from "./helpers/push-notification.js";

/**
 * The FCM HTTP v1 adapter against a local server speaking both halves of Google's protocol: the
 * OAuth token endpoint (RFC 7523: it checks the assertion's RS256 signature with the service
 * account's public key, its iss, aud, scope and lifetime, and issues access tokens) and
 * messages:send (it checks the bearer token is one it issued and the message's shape, and
 * answers as FCM does: 200 {name}, 404 UNREGISTERED, 400 INVALID_ARGUMENT about the token, 429).
 */
const PROJECT = "shardchat-test";
const CLIENT_EMAIL = "push@shardchat-test.iam.gserviceaccount.com";
const log = createLogger("test", "silent");

interface FakeFcm {
  url: string;
  tokenUri: string;
  /** Assertions the token endpoint accepted, with their decoded claims. */
  assertions: { header: Record<string, unknown>; claims: Record<string, unknown> }[];
  /** messages:send requests that carried a valid access token: the token and the message. */
  sends: { accessToken: string; message: any }[];
  /** Requests refused for their access token or assertion. */
  refusals: string[];
  /** Makes messages:send refuse this access token with 401, as for a revoked one. */
  revoke(token: string): void;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function decodeJwt(jwt: string) {
  const [h, c, s] = jwt.split(".");
  if (!h || !c || !s) throw new Error("not a JWT");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString()) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(c, "base64url").toString()) as Record<string, unknown>,
    input: `${h}.${c}`,
    signature: Buffer.from(s, "base64url"),
  };
}

async function startFakeFcm(publicKey: KeyObject): Promise<FakeFcm> {
  const issued = new Set<string>();
  const revoked = new Set<string>();
  const state = {
    assertions: [] as FakeFcm["assertions"],
    sends: [] as FakeFcm["sends"],
    refusals: [] as string[],
  };
  let url = "";
  const json = (res: import("node:http").ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const fcmError = (code: number, status: string, message: string, details: unknown[] = []) => ({
    error: { code, message, status, details },
  });

  const server: Server = createServer(async (req, res) => {
    const body = await readBody(req);
    if (req.method === "POST" && req.url === "/token") {
      const form = new URLSearchParams(body);
      if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
        state.refusals.push("grant_type");
        return json(res, 400, { error: "unsupported_grant_type" });
      }
      let jwt: ReturnType<typeof decodeJwt>;
      try {
        jwt = decodeJwt(form.get("assertion") ?? "");
      } catch {
        state.refusals.push("malformed assertion");
        return json(res, 400, { error: "invalid_grant", error_description: "Invalid JWT" });
      }
      const signed = jwt.header.alg === "RS256" && verify("sha256", Buffer.from(jwt.input), publicKey, jwt.signature);
      if (!signed) {
        state.refusals.push("signature");
        return json(res, 400, { error: "invalid_grant", error_description: "Invalid JWT Signature." });
      }
      const { iss, aud, scope, iat, exp } = jwt.claims;
      const now = Date.now() / 1000;
      const valid =
        iss === CLIENT_EMAIL &&
        aud === `${url}/token` &&
        scope === FCM_SCOPE &&
        typeof iat === "number" &&
        typeof exp === "number" &&
        Math.abs(iat - now) < 60 &&
        exp - iat <= 3600;
      if (!valid) {
        state.refusals.push("claims");
        return json(res, 400, { error: "invalid_grant", error_description: "Invalid JWT claims." });
      }
      state.assertions.push({ header: jwt.header, claims: jwt.claims });
      const token = `ya29.test-${state.assertions.length}`;
      issued.add(token);
      return json(res, 200, { access_token: token, expires_in: 3599, token_type: "Bearer" });
    }
    if (req.method === "POST" && req.url === `/v1/projects/${PROJECT}/messages:send`) {
      const accessToken = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
      if (!issued.has(accessToken) || revoked.has(accessToken)) {
        state.refusals.push(`access token ${accessToken}`);
        return json(res, 401, fcmError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."));
      }
      const message = (JSON.parse(body) as { message?: any }).message;
      state.sends.push({ accessToken, message });
      const token: string = message?.token ?? "";
      if (token.startsWith("gone-")) {
        return json(
          res,
          404,
          fcmError(404, "NOT_FOUND", "Requested entity was not found.", [
            { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" },
          ]),
        );
      }
      if (token.startsWith("bad-")) {
        return json(
          res,
          400,
          fcmError(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", [
            { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "INVALID_ARGUMENT" },
            {
              "@type": "type.googleapis.com/google.rpc.BadRequest",
              fieldViolations: [{ field: "message.token", description: "Invalid registration token" }],
            },
          ]),
        );
      }
      if (token.startsWith("slow-")) return; // never answers
      if (token.startsWith("quota-")) {
        return json(
          res,
          429,
          fcmError(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", [
            { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "QUOTA_EXCEEDED" },
          ]),
        );
      }
      if (typeof message?.notification?.title !== "string" || typeof message?.data?.seq !== "string") {
        return json(res, 400, fcmError(400, "INVALID_ARGUMENT", "Invalid message", []));
      }
      return json(res, 200, { name: `projects/${PROJECT}/messages/${state.sends.length}` });
    }
    json(res, 404, fcmError(404, "NOT_FOUND", "no such route"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    tokenUri: `${url}/token`,
    ...state,
    revoke: (token) => revoked.add(token),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on: one the system just handed out and took back. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const device = (token: string): PushDevice => ({ uid: "1002", deviceId: "phone-1", provider: "fcm", token });

let dir: string;
let fcm: FakeFcm;
let accountFile: string;
const keys = generateKeyPairSync("rsa", { modulusLength: 2048 });

const writeAccount = (name: string, fields: Record<string, unknown>): string => {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(fields));
  return file;
};
const accountFields = (over: Record<string, unknown> = {}) => ({
  type: "service_account",
  project_id: PROJECT,
  private_key_id: "key-1",
  private_key: keys.privateKey.export({ type: "pkcs8", format: "pem" }),
  client_email: CLIENT_EMAIL,
  token_uri: fcm.tokenUri,
  ...over,
});
const configWith = (file: string) =>
  loadConfig({
    LOG_LEVEL: "warn",
    FCM_SERVICE_ACCOUNT_FILE: file,
    FCM_ENDPOINT: fcm.url,
    PUSH_SEND_TIMEOUT_MS: "3000",
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sc-fcm-"));
  fcm = await startFakeFcm(keys.publicKey);
  accountFile = writeAccount("account.json", accountFields());
});

afterAll(async () => {
  await fcm?.close();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("FCM HTTP v1 adapter", () => {
  it("gets an access token with a signed assertion and sends the v1 message FCM expects", async () => {
    const provider = new FcmProvider(configWith(accountFile), log);
    const before = fcm.sends.length;
    expect(await provider.send(device("tok-1"), notification())).toEqual({ kind: "sent" });
    expect(fcm.refusals).toEqual([]);
    const assertion = fcm.assertions.at(-1);
    expect(assertion?.header).toMatchObject({ alg: "RS256", kid: "key-1" });
    expect(assertion?.claims).toMatchObject({ iss: CLIENT_EMAIL, aud: fcm.tokenUri, scope: FCM_SCOPE });
    const sent = fcm.sends[before];
    expect(sent?.message).toMatchObject({
      token: "tok-1",
      notification: { title: "alice", body: "hello there" },
      data: { convId: "p:1001:1002", seq: "7" },
      android: {
        collapse_key: "p:1001:1002",
        ttl: "600s",
        notification: { tag: "p:1001:1002", notification_count: 3 },
      },
      apns: { headers: { "apns-collapse-id": "p:1001:1002" }, payload: { aps: { badge: 3 } } },
    });
    const expiration = Number(sent?.message.apns.headers["apns-expiration"]);
    expect(Math.abs(expiration - (Date.now() / 1000 + 600))).toBeLessThan(5);
  });

  it("reuses one access token across sends, fetches it once for concurrent first sends, and renews it before expiry", async () => {
    const provider = new FcmProvider(configWith(accountFile), log);
    const assertionsBefore = fcm.assertions.length;
    const sendsBefore = fcm.sends.length;
    const outcomes = await Promise.all([1, 2, 3, 4, 5].map((i) => provider.send(device(`tok-c${i}`), notification())));
    expect(outcomes).toEqual(Array(5).fill({ kind: "sent" }));
    expect(await provider.send(device("tok-c6"), notification())).toEqual({ kind: "sent" });
    expect(fcm.assertions.length).toBe(assertionsBefore + 1);
    const used = new Set(fcm.sends.slice(sendsBefore).map((s) => s.accessToken));
    expect(used.size).toBe(1);

    // 56 minutes on (the clock of this process, so the local token server's too), the token
    // (valid 3599 s) is within its renewal margin: a new one is fetched and used.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 56 * 60_000);
    expect(await provider.send(device("tok-c7"), notification())).toEqual({ kind: "sent" });
    expect(fcm.assertions.length).toBe(assertionsBefore + 2);
    expect(used.has(fcm.sends.at(-1)?.accessToken ?? "")).toBe(false);
  });

  it("answers gone for UNREGISTERED and for an INVALID_ARGUMENT about the token, failed for a quota refusal", async () => {
    const provider = new FcmProvider(configWith(accountFile), log);
    expect(await provider.send(device("gone-1"), notification())).toEqual({ kind: "gone" });
    expect(await provider.send(device("bad-1"), notification())).toEqual({ kind: "gone" });
    const quota = await provider.send(device("quota-1"), notification());
    expect(quota).toMatchObject({ kind: "failed" });
    expect(quota.kind === "failed" && quota.reason).toContain("429");
  });

  it("fetches a new access token once when FCM refuses the cached one (401)", async () => {
    const provider = new FcmProvider(configWith(accountFile), log);
    expect(await provider.send(device("tok-r1"), notification())).toEqual({ kind: "sent" });
    const first = fcm.sends.at(-1)?.accessToken ?? "";
    fcm.revoke(first);
    const assertionsBefore = fcm.assertions.length;
    expect(await provider.send(device("tok-r2"), notification())).toEqual({ kind: "sent" });
    expect(fcm.assertions.length).toBe(assertionsBefore + 1);
    expect(fcm.sends.at(-1)?.accessToken).not.toBe(first);
    expect(fcm.refusals.at(-1)).toBe(`access token ${first}`);
  });

  it("fails (and sends nothing) when the token endpoint refuses the assertion: a key that is not the account's", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const file = writeAccount(
      "other-key.json",
      accountFields({ private_key: other.privateKey.export({ type: "pkcs8", format: "pem" }) }),
    );
    const provider = new FcmProvider(configWith(file), log);
    const sendsBefore = fcm.sends.length;
    const outcome = await provider.send(device("tok-x"), notification());
    expect(outcome).toMatchObject({ kind: "failed" });
    expect(outcome.kind === "failed" && outcome.reason).toContain("invalid_grant");
    expect(fcm.refusals.at(-1)).toBe("signature");
    expect(fcm.sends.length).toBe(sendsBefore);
  });

  it("fails when the token endpoint cannot be reached, and when FCM does not answer within PUSH_SEND_TIMEOUT_MS", async () => {
    const file = writeAccount(
      "unreachable.json",
      accountFields({ token_uri: `http://127.0.0.1:${await closedPort()}/token` }),
    );
    const unreachable = await new FcmProvider(configWith(file), log).send(device("tok-u"), notification());
    expect(unreachable).toMatchObject({ kind: "failed" });
    expect(unreachable.kind === "failed" && unreachable.reason).toMatch(/^FCM access token: .*ECONNREFUSED/);

    const provider = new FcmProvider({ ...configWith(accountFile), PUSH_SEND_TIMEOUT_MS: 300 }, log);
    const started = Date.now();
    const slow = await provider.send(device("slow-1"), notification());
    expect(slow).toMatchObject({ kind: "failed", reason: expect.stringMatching(/timeout/i) });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("is off without a key file, and a key file that is missing, incomplete or not RSA stops the start", () => {
    expect(fcmProviderFrom(loadConfig({ LOG_LEVEL: "warn" }), log)).toBeUndefined();
    expect(fcmProviderFrom(configWith(accountFile), log)?.kind).toBe("fcm");
    expect(() => fcmProviderFrom(configWith(join(dir, "missing.json")), log)).toThrow(ConfigError);
    const noProject = writeAccount("no-project.json", accountFields({ project_id: undefined }));
    expect(() => fcmProviderFrom(configWith(noProject), log)).toThrow(/project_id/);
    const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    const ecFile = writeAccount(
      "ec.json",
      accountFields({ private_key: ec.privateKey.export({ type: "pkcs8", format: "pem" }) }),
    );
    expect(() => fcmProviderFrom(configWith(ecFile), log)).toThrow(/RSA/);
  });
});

import { execFileSync } from "node:child_process";
import { createECDH, createPublicKey, type ECDH, randomBytes, randomUUID, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ece from "http_ece";

/** A push the receiver accepted: its headers and the payload it decrypted. */
export interface ReceivedPush {
  subscriptionId: string;
  ttl: number;
  topic: string | undefined;
  urgency: string | undefined;
  /** The decrypted body, parsed as JSON. */
  payload: Record<string, unknown>;
}

/** A request the receiver refused, and why. */
export interface RefusedPush {
  subscriptionId: string;
  status: number;
  reason: string;
}

/** A browser's subscription: what it hands the server, and the keys it keeps. */
export interface TestSubscription {
  id: string;
  /** PushSubscription.toJSON(): the endpoint and the public keys. */
  json: { endpoint: string; keys: { p256dh: string; auth: string } };
  ecdh: ECDH;
  auth: Buffer;
}

/**
 * A local Web Push service (RFC 8030) over HTTPS, as a push service checks and a browser
 * decrypts: each POST to a subscription's endpoint must carry `Authorization: vapid t=<jwt>,
 * k=<key>` with the application server key the subscription was made for, a JWT signed ES256
 * by that key for this origin (`aud`), not expired and at most 24 h ahead (`exp`), with a `sub`;
 * a TTL header; an aes128gcm body, which is decrypted with the subscription's private ECDH key
 * and auth secret. Answers 201 (received), 410 for a subscription marked gone, 404 for an
 * unknown one, 400 for a malformed request, 401/403 for a VAPID failure.
 */
export interface WebPushReceiver {
  /** https://127.0.0.1:<port> */
  origin: string;
  /** For WEB_PUSH_ENDPOINT_HOSTS. */
  host: string;
  /** An https.Agent that trusts this receiver's self-signed certificate. */
  agent: Agent;
  /** A new subscription, as a browser makes one (P-256 key pair, 16-byte auth secret). */
  subscribe(): TestSubscription;
  /** From now on the subscription's endpoint answers 410 Gone. */
  markGone(id: string): void;
  received: ReceivedPush[];
  refused: RefusedPush[];
  /** The pushes one subscription received. */
  of(id: string): ReceivedPush[];
  close(): Promise<void>;
}

export async function startWebPushReceiver(options: { vapidPublicKey: string }): Promise<WebPushReceiver> {
  const dir = mkdtempSync(join(tmpdir(), "sc-webpush-"));
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  const cert = readFileSync(certFile);
  const key = readFileSync(keyFile);
  rmSync(dir, { recursive: true, force: true });

  const subscriptions = new Map<string, TestSubscription>();
  const gone = new Set<string>();
  const received: ReceivedPush[] = [];
  const refused: RefusedPush[] = [];
  let origin = "";

  const server: Server = createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const id = /^\/push\/([A-Za-z0-9-]+)$/.exec(req.url ?? "")?.[1] ?? "";
      const answer = (status: number, reason = "") => {
        if (status >= 300) refused.push({ subscriptionId: id, status, reason });
        res.writeHead(status, status === 201 ? { location: `${origin}/message/${randomUUID()}` } : {});
        res.end(reason);
      };
      const subscription = subscriptions.get(id);
      if (req.method !== "POST" || !subscription) return answer(404, "no such subscription");
      if (gone.has(id)) return answer(410, "unsubscribed");
      const vapid = checkVapid(req.headers.authorization, options.vapidPublicKey, origin);
      if (vapid) return answer(vapid.status, vapid.reason);
      const ttl = Number(req.headers.ttl);
      if (req.headers.ttl === undefined || !Number.isInteger(ttl) || ttl < 0) return answer(400, "TTL header");
      const topic = header(req.headers.topic);
      if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic)) return answer(400, "Topic header");
      if (req.headers["content-encoding"] !== "aes128gcm") return answer(415, "content encoding");
      let payload: Record<string, unknown>;
      try {
        const plain: Buffer = ece.decrypt(Buffer.concat(chunks), {
          version: "aes128gcm",
          privateKey: subscription.ecdh,
          authSecret: subscription.auth.toString("base64url"),
        });
        payload = JSON.parse(plain.toString("utf8"));
      } catch (err) {
        return answer(400, `cannot decrypt: ${(err as Error).message}`);
      }
      received.push({ subscriptionId: id, ttl, topic, urgency: header(req.headers.urgency), payload });
      answer(201);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const agent = new Agent({ ca: cert, keepAlive: true });

  return {
    origin,
    host: "127.0.0.1",
    agent,
    subscribe() {
      const id = randomUUID();
      const ecdh = createECDH("prime256v1");
      ecdh.generateKeys();
      const auth = randomBytes(16);
      const subscription: TestSubscription = {
        id,
        json: {
          endpoint: `${origin}/push/${id}`,
          keys: { p256dh: ecdh.getPublicKey().toString("base64url"), auth: auth.toString("base64url") },
        },
        ecdh,
        auth,
      };
      subscriptions.set(id, subscription);
      return subscription;
    },
    markGone: (id) => gone.add(id),
    received,
    refused,
    of: (id) => received.filter((r) => r.subscriptionId === id),
    async close() {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The VAPID check (RFC 8292) of an Authorization header; undefined when it passes. */
function checkVapid(
  authorization: string | undefined,
  expectedKey: string,
  origin: string,
): { status: number; reason: string } | undefined {
  const match = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+),\s*k=([A-Za-z0-9_-]+)$/.exec(
    authorization ?? "",
  );
  if (!match) return { status: 401, reason: "no vapid authorization" };
  const [, jwt = "", k = ""] = match;
  // The key the subscription was made with (applicationServerKey): another one is refused.
  if (k !== expectedKey) return { status: 403, reason: "another application server key" };
  const [head = "", body = "", signature = ""] = jwt.split(".");
  let claims: { aud?: unknown; exp?: unknown; sub?: unknown };
  try {
    const header = JSON.parse(Buffer.from(head, "base64url").toString("utf8")) as { alg?: unknown };
    if (header.alg !== "ES256") return { status: 401, reason: "alg is not ES256" };
    claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  } catch {
    return { status: 401, reason: "malformed JWT" };
  }
  const point = Buffer.from(k, "base64url");
  if (point.length !== 65 || point[0] !== 4) return { status: 401, reason: "k is not a P-256 point" };
  const publicKey = createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: point.subarray(1, 33).toString("base64url"),
      y: point.subarray(33, 65).toString("base64url"),
    },
    format: "jwk",
  });
  const signed = verify(
    "sha256",
    Buffer.from(`${head}.${body}`),
    { key: publicKey, dsaEncoding: "ieee-p1363" },
    Buffer.from(signature, "base64url"),
  );
  if (!signed) return { status: 401, reason: "bad JWT signature" };
  if (claims.aud !== origin) return { status: 401, reason: `aud ${String(claims.aud)} is not ${origin}` };
  const now = Date.now() / 1000;
  if (typeof claims.exp !== "number" || claims.exp <= now || claims.exp > now + 24 * 3600) {
    return { status: 401, reason: "exp out of range" };
  }
  if (typeof claims.sub !== "string" || !/^(mailto:|https:)/.test(claims.sub)) {
    return { status: 401, reason: "sub is not mailto: or https:" };
  }
  return undefined;
}

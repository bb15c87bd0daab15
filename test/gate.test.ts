import { connect } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { buildGateApp, type GateDeps } from "../src/gate/app.js";
import { startGate } from "../src/gate/server.js";
import { StatusServiceService } from "../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../src/grpc/api.js";
import { Snowflake } from "../src/ids/snowflake.js";
import { createLogger } from "../src/log/logger.js";
import { SmtpMailer } from "../src/mail/smtp-mailer.js";
import { type Probe, tcpProbe } from "../src/metrics/health.js";
import { createMetrics } from "../src/metrics/metrics.js";
import { RedisNodeRegistry } from "../src/routing/redis/node-registry.js";
import { RedisRateLimiter } from "../src/routing/redis/rate-limiter.js";
import { RedisTokenStore } from "../src/routing/redis/token-store.js";
import { RedisVerifyCodeStore } from "../src/routing/redis/verify-code-store.js";
import { createRedis } from "../src/routing/redis-client.js";
import { createStatusService, type StatusApi } from "../src/status/service.js";
import { migrate } from "../src/storage/mysql/migrate.js";
import { createPool, type Pool } from "../src/storage/mysql/pool.js";
import { MysqlUserStore } from "../src/storage/mysql/user-store.js";
import { createVerifyService } from "../src/verify/service.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { freePort } from "./helpers/ports.js";
import { codeFromMail, startSmtpSink } from "./helpers/smtp-sink.js";

let sink: Awaited<ReturnType<typeof startSmtpSink>>;
let config: Config;
let redis: Redis | Cluster;
let pool: Pool;
let mailer: SmtpMailer;
let app: FastifyInstance;
let status: StatusApi;
let users: MysqlUserStore;
const extraApps: FastifyInstance[] = [];
/** Gates started listening (startGate), closed after the suite. */
const closers: (() => Promise<void>)[] = [];
const log = createLogger("gate-test", "warn");

const NODE = {
  nodeId: "chat-test-1",
  host: "127.0.0.1",
  tcpPort: 9001,
  wsUrl: "ws://127.0.0.1:9101/ws",
  grpcAddr: "127.0.0.1:50061",
  weight: 1,
  connections: 0,
};

function statusOver(keyPrefix: string): StatusApi {
  return createStatusService({
    registry: new RedisNodeRegistry(redis, keyPrefix),
    tokens: new RedisTokenStore(redis, keyPrefix),
    config,
    log,
  });
}

/** The deps of a gate over the real verify service, MySQL users and the given status. */
function gateDeps(statusApi: StatusApi, userStore: MysqlUserStore = users, extra: Partial<GateDeps> = {}): GateDeps {
  const verify = createVerifyService({
    codes: new RedisVerifyCodeStore(redis, config.REDIS_KEY_PREFIX),
    limiter: new RedisRateLimiter(redis, config.REDIS_KEY_PREFIX),
    mailer,
    config,
    log,
  });
  return {
    users: userStore,
    verify,
    status: statusApi,
    ids: new Snowflake({ workerId: 7 }),
    limiter: new RedisRateLimiter(redis, config.REDIS_KEY_PREFIX),
    config,
    log,
    ...extra,
  };
}

/** Such a gate, not listening (driven with inject()). */
function gateWith(
  statusApi: StatusApi,
  userStore: MysqlUserStore = users,
  extra: Partial<GateDeps> = {},
): Promise<FastifyInstance> {
  return buildGateApp(gateDeps(statusApi, userStore, extra));
}

async function call(
  method: "GET" | "POST",
  url: string,
  body?: unknown,
  target: FastifyInstance = app,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await target.inject({ method, url, payload: body as Record<string, unknown> | undefined });
  expect(res.headers["content-type"]).toMatch(/^application\/json/);
  return { status: res.statusCode, json: res.json() };
}

const post = (url: string, body: unknown, target?: FastifyInstance) => call("POST", url, body, target);

async function mailedCode(email: string): Promise<string> {
  const res = await post("/v1/verify-code", { email });
  expect(res.json.error).toBe(ErrorCode.OK);
  return codeFromMail(await sink.waitForMail(email.toLowerCase()));
}

async function register(user: string, email: string, password: string): Promise<string> {
  const res = await post("/v1/register", { user, email, password, code: await mailedCode(email) });
  expect(res).toMatchObject({ status: 200, json: { error: ErrorCode.OK } });
  return res.json.uid as string;
}

beforeAll(async () => {
  sink = await startSmtpSink();
  config = testConfig({
    SMTP_URL: sink.url,
    GATE_BODY_LIMIT_BYTES: 4096,
    VERIFY_MAX_PER_ADDR_PER_HOUR: 1000,
    NODE_TTL_MS: 600_000,
  });
  await migrate(config.MYSQL_URL);
  redis = createRedis(config);
  pool = createPool(config);
  users = new MysqlUserStore(pool);
  mailer = new SmtpMailer(config.SMTP_URL, config.MAIL_FROM);
  status = statusOver(config.REDIS_KEY_PREFIX);
  expect((await status.registerNode({ node: NODE })).error).toBe(ErrorCode.OK);
  app = await gateWith(status);
});

afterAll(async () => {
  for (const a of [app, ...extraApps]) await a?.close();
  for (const close of closers) await close();
  mailer?.close();
  await pool?.end();
  if (redis) {
    const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
  await sink?.close();
  if (config) await dropTestDatabase(config);
});

describe("gate", () => {
  it("answers /healthz", async () => {
    expect(await call("GET", "/healthz")).toEqual({ status: 200, json: { error: ErrorCode.OK } });
  });

  it("registers with the mailed code; only whoever holds a code for the email learns a name or email is taken", async () => {
    const uid = await register("alice", "Alice@Example.com", "correct horse");
    expect(uid).toMatch(/^[1-9]\d*$/);
    const stored = await users.byName("alice");
    expect(stored).toMatchObject({ uid, name: "alice", email: "alice@example.com" });

    // Without the mailbox's code, a taken name or email looks like any other attempt.
    for (const [user, email] of [
      ["ALICE", "other@example.com"],
      ["alice2", " alice@EXAMPLE.com"],
    ]) {
      const res = await post("/v1/register", { user, email, password: "correct horse", code: "123456" });
      expect(res.json.error, `${user} ${email}`).toBe(ErrorCode.VERIFY_CODE_WRONG);
    }

    // With it: the name is taken, and the code is still good for another name.
    const code = await mailedCode("other@example.com");
    const registerAs = (user: string) =>
      post("/v1/register", { user, email: "other@example.com", password: "pw-12345", code });
    expect(await registerAs("ALICE")).toMatchObject({ status: 409, json: { error: ErrorCode.USER_EXISTS } });
    expect(await registerAs("alice3")).toMatchObject({ status: 200, json: { error: ErrorCode.OK } });
    // Spent now.
    const again = await registerAs("alice4");
    expect(again.json.error).toBe(ErrorCode.VERIFY_CODE_WRONG);

    const takenEmail = await post("/v1/register", {
      user: "alice2",
      email: " alice@EXAMPLE.com",
      password: "correct horse",
      code: await mailedCode("alice@example.com"),
    });
    expect(takenEmail).toMatchObject({ status: 409, json: { error: ErrorCode.EMAIL_EXISTS } });
  });

  it("refuses a wrong code and creates nobody", async () => {
    const code = await mailedCode("wrongcode@example.com");
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
    const res = await post("/v1/register", {
      user: "wrongcode",
      email: "wrongcode@example.com",
      password: "correct horse",
      code: wrong,
    });
    expect(res).toMatchObject({ status: 400, json: { error: ErrorCode.VERIFY_CODE_WRONG } });
    expect(await users.byName("wrongcode")).toBeNull();
  });

  it("answers a second code request within the cool-down with 429 and retryAfterSeconds", async () => {
    await mailedCode("cooldown@example.com");
    const res = await post("/v1/verify-code", { email: "cooldown@example.com" });
    expect(res.status).toBe(429);
    expect(res.json.error).toBe(ErrorCode.VERIFY_CODE_COOLDOWN);
    expect(res.json.retryAfterSeconds).toBeGreaterThan(0);
  });

  it("answers INVALID_ARGUMENT for malformed requests", async () => {
    const good = { user: "bob_1", email: "bob@example.com", password: "long enough", code: "123456" };
    const bad: unknown[] = [
      { ...good, email: "not an email" },
      { ...good, password: "short" },
      { ...good, user: "b" },
      { ...good, user: "bob-with-dash" },
      { user: good.user, email: good.email, password: good.password },
      { ...good, password: 12345678901 },
      { ...good, code: 123456 },
      [good],
      "just a string",
    ];
    for (const body of bad) {
      const res = await post("/v1/register", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error, JSON.stringify(body)).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(typeof res.json.message).toBe("string");
    }
    expect((await post("/v1/verify-code", {})).json.error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await post("/v1/verify-code", { email: "nope" })).json.error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect((await post("/v1/login", { password: "x" })).json.error).toBe(ErrorCode.INVALID_ARGUMENT);

    for (const [contentType, payload] of [
      ["application/json", "{not json"],
      ["application/json", ""],
      ["text/plain", "hello"],
    ] as const) {
      const res = await app.inject({
        method: "POST",
        url: "/v1/login",
        headers: { "content-type": contentType },
        payload,
      });
      expect(res.statusCode, `${contentType} ${payload}`).toBe(400);
      expect(res.json().error).toBe(ErrorCode.INVALID_ARGUMENT);
    }
    expect(await users.byName("bob_1")).toBeNull();
  });

  it("answers FRAME_TOO_LARGE for a body over GATE_BODY_LIMIT_BYTES", async () => {
    const res = await post("/v1/login", { user: "x", password: "p".repeat(config.GATE_BODY_LIMIT_BYTES) });
    expect(res).toMatchObject({ status: 413, json: { error: ErrorCode.FRAME_TOO_LARGE } });
  });

  it("answers NOT_FOUND for an unknown route", async () => {
    expect(await call("GET", "/v1/nope")).toMatchObject({ status: 404, json: { error: ErrorCode.NOT_FOUND } });
    expect(await call("GET", "/v1/login")).toMatchObject({ status: 404, json: { error: ErrorCode.NOT_FOUND } });
  });

  it("logs in by email or name with the node and a token status accepts", async () => {
    const uid = await register("carol", "carol@example.com", "carols password");
    for (const body of [
      { email: " CAROL@example.com", password: "carols password" },
      { user: "carol", password: "carols password" },
    ]) {
      const res = await post("/v1/login", body);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({
        error: ErrorCode.OK,
        uid,
        nodeId: NODE.nodeId,
        host: NODE.host,
        port: NODE.tcpPort,
        wsUrl: NODE.wsUrl,
      });
      expect(res.json.token).toEqual(expect.any(String));
      expect(res.json.expiresAtMs).toBeGreaterThan(Date.now());
      const check = await status.checkToken({ uid, token: res.json.token as string });
      expect(check.error).toBe(ErrorCode.OK);
    }
  });

  it("answers BAD_CREDENTIALS for a wrong password and for an unknown user alike", async () => {
    await register("dave", "dave@example.com", "daves password");
    for (const body of [
      { user: "dave", password: "not daves password" },
      { email: "dave@example.com", password: "not daves password" },
      { user: "nobody_here", password: "daves password" },
      { email: "nobody@example.com", password: "daves password" },
    ]) {
      const res = await post("/v1/login", body);
      expect(res, JSON.stringify(body)).toEqual({
        status: 401,
        json: { error: ErrorCode.BAD_CREDENTIALS, message: "BAD_CREDENTIALS" },
      });
    }
  });

  it("locks an account after LOGIN_MAX_FAILURES wrong passwords, even against the right one", async () => {
    await register("mallory", "mallory@example.com", "mallorys password");
    for (let i = 0; i < config.LOGIN_MAX_FAILURES; i++) {
      expect((await post("/v1/login", { user: "mallory", password: `guess ${i}` })).json.error).toBe(
        ErrorCode.BAD_CREDENTIALS,
      );
    }
    const locked = await post("/v1/login", { email: "mallory@example.com", password: "mallorys password" });
    expect(locked).toEqual({ status: 429, json: { error: ErrorCode.ACCOUNT_LOCKED, message: "ACCOUNT_LOCKED" } });
    // An unknown name locks alike, so the lockout does not tell which accounts exist.
    for (let i = 0; i <= config.LOGIN_MAX_FAILURES; i++) await post("/v1/login", { user: "ghost", password: "x" });
    expect((await post("/v1/login", { user: "ghost", password: "x" })).json.error).toBe(ErrorCode.ACCOUNT_LOCKED);
  });

  it("forgets earlier failures after a good password", async () => {
    await register("oscar", "oscar@example.com", "oscars password");
    for (let round = 0; round < 3; round++) {
      for (let i = 1; i < config.LOGIN_MAX_FAILURES; i++) {
        expect((await post("/v1/login", { user: "oscar", password: "wrong" })).json.error).toBe(
          ErrorCode.BAD_CREDENTIALS,
        );
      }
      expect((await post("/v1/login", { user: "oscar", password: "oscars password" })).json.error).toBe(ErrorCode.OK);
    }
  });

  it("serves /metrics and /readyz on its ops port only; the public port answers /healthz", async () => {
    const metrics = createMetrics("gate");
    const closedPort = await freePort();
    const served = async (probes: Probe[]) => {
      const gate = await startGate(
        gateDeps(status, users, {
          config: { ...config, GATE_HOST: "127.0.0.1", GATE_PORT: 0, METRICS_HOST: "127.0.0.1", METRICS_PORT: 0 },
          metrics,
          probes,
        }),
      );
      closers.push(() => gate.close());
      return {
        public: (path: string) => fetch(`http://127.0.0.1:${gate.port}${path}`),
        ops: (path: string) => fetch(`http://127.0.0.1:${gate.opsPort}${path}`),
      };
    };
    const mysqlProbe: Probe = { name: "mysql", check: () => pool.query("SELECT 1") };
    const ready = await served([mysqlProbe]);
    const notReady = await served([mysqlProbe, tcpProbe("verify", `127.0.0.1:${closedPort}`)]);

    expect((await ready.public("/healthz")).status).toBe(200);
    for (const path of ["/metrics", "/readyz"]) expect((await ready.public(path)).status, path).toBe(404);

    metrics.rateLimited.inc({ limit: "probe" });
    const text = await ready.ops("/metrics");
    expect(text.status).toBe(200);
    expect(text.headers.get("content-type")).toMatch(/^text\/plain/);
    const body = await text.text();
    expect(body).toContain('shardchat_rate_limited_total{limit="probe",service="gate"} 1');
    expect(body).toContain("nodejs_eventloop_lag_seconds");

    expect(await (await ready.ops("/readyz")).json()).toMatchObject({ ready: true });
    const down = await notReady.ops("/readyz");
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({
      ready: false,
      checks: [
        { name: "mysql", ok: true },
        { name: "verify", ok: false },
      ],
    });
    expect((await notReady.ops("/healthz")).status).toBe(200);
  });

  it("refuses over-long fields before any lookup or hash, and keeps what a client typed out of Redis keys", async () => {
    const long = "a".repeat(1000);
    const tooLongPassword = "p".repeat(config.PASSWORD_MAX_LENGTH + 1);
    const refused: [string, Record<string, unknown>][] = [
      ["/v1/login", { user: long, password: "x" }],
      ["/v1/login", { email: `${long}@example.com`, password: "x" }],
      ["/v1/login", { user: "alice", password: tooLongPassword }],
      ["/v1/register", { user: "newbie", email: `${long}@example.com`, password: "long enough", code: "123456" }],
      ["/v1/register", { user: "newbie", email: "newbie@example.com", password: tooLongPassword, code: "123456" }],
      ["/v1/reset-password", { email: "alice@example.com", password: tooLongPassword, code: "123456" }],
      ["/v1/verify-code", { email: `${long}@example.com` }],
    ];
    for (const [url, body] of refused) {
      const res = await post(url, body);
      expect([url, res.status, res.json.error]).toEqual([url, 400, ErrorCode.INVALID_ARGUMENT]);
    }
    // A name nobody has, at the longest allowed: its failure count is keyed by a digest.
    const unknown = `x${"y".repeat(31)}`;
    expect((await post("/v1/login", { user: unknown, password: "wrong" })).json.error).toBe(ErrorCode.BAD_CREDENTIALS);
    const keys = await redis.keys(`${config.REDIS_KEY_PREFIX}*`);
    expect(keys.filter((k) => k.includes(unknown) || k.includes("aaaaaaaa"))).toEqual([]);
    expect(Math.max(...keys.map((k) => k.length))).toBeLessThan(150);
  });

  it("spends a per-address and an all-gates login budget before the password hash", async () => {
    const budgets = {
      ...config,
      GATE_TRUST_PROXY: ["127.0.0.1"],
      LOGIN_MAX_PER_ADDR_PER_MINUTE: 3,
      LOGIN_MAX_PER_SECOND: 1000,
    };
    const limiter = new RedisRateLimiter(redis, `${config.REDIS_KEY_PREFIX}budget:`);
    const gate = await gateWith(status, users, { config: budgets, limiter });
    extraApps.push(gate);
    const login = async (from: string, target = gate) => {
      const res = await target.inject({
        method: "POST",
        url: "/v1/login",
        headers: { "x-forwarded-for": from },
        payload: { user: "nobody_here", password: "wrong" },
      });
      return { status: res.statusCode, error: res.json().error as ErrorCode };
    };
    for (let i = 0; i < 3; i++)
      expect(await login("203.0.113.7")).toEqual({ status: 401, error: ErrorCode.BAD_CREDENTIALS });
    expect(await login("203.0.113.7")).toEqual({ status: 429, error: ErrorCode.RATE_LIMITED });
    // Another address has its own budget.
    expect((await login("203.0.113.8")).error).toBe(ErrorCode.BAD_CREDENTIALS);

    // All gates together: 2 a second, whatever the address.
    const global = await gateWith(status, users, {
      config: { ...budgets, LOGIN_MAX_PER_ADDR_PER_MINUTE: 1000, LOGIN_MAX_PER_SECOND: 2 },
      limiter: new RedisRateLimiter(redis, `${config.REDIS_KEY_PREFIX}global:`),
    });
    extraApps.push(global);
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => login(`198.51.100.${i}`, global)));
    expect(answers.filter((a) => a.error === ErrorCode.RATE_LIMITED).length).toBeGreaterThanOrEqual(4);
    expect(answers.every((a) => a.error === ErrorCode.RATE_LIMITED || a.error === ErrorCode.BAD_CREDENTIALS)).toBe(
      true,
    );
  });

  it("answers UNAVAILABLE at once when the password-hash queue is full, and serves the rest", async () => {
    const gate = await gateWith(status, users, {
      config: { ...config, GATE_TRUST_PROXY: ["127.0.0.1"], GATE_HASHES_IN_FLIGHT: 1, GATE_HASH_QUEUE_MAX: 1 },
      limiter: new RedisRateLimiter(redis, `${config.REDIS_KEY_PREFIX}queue:`),
    });
    extraApps.push(gate);
    const answers = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const res = await gate.inject({
          method: "POST",
          url: "/v1/login",
          headers: { "x-forwarded-for": `192.0.2.${i}` },
          payload: { user: `nobody_${i}`, password: "wrong" },
        });
        return { status: res.statusCode, error: res.json().error as ErrorCode };
      }),
    );
    const unavailable = answers.filter((a) => a.error === ErrorCode.UNAVAILABLE);
    expect(unavailable.length).toBeGreaterThan(0);
    expect(unavailable.every((a) => a.status === 503)).toBe(true);
    expect(answers.filter((a) => a.error === ErrorCode.BAD_CREDENTIALS).length).toBeGreaterThanOrEqual(2);
    expect(answers.every((a) => a.error === ErrorCode.UNAVAILABLE || a.error === ErrorCode.BAD_CREDENTIALS)).toBe(true);
  });

  it("closes a connection that stays silent past GATE_IDLE_TIMEOUT_MS", async () => {
    const gate = await startGate(
      gateDeps(status, users, {
        config: { ...config, GATE_HOST: "127.0.0.1", GATE_PORT: 0, METRICS_PORT: null, GATE_IDLE_TIMEOUT_MS: 300 },
      }),
    );
    closers.push(() => gate.close());
    // Half a request line, then nothing (a slowloris).
    const socket = connect(gate.port, "127.0.0.1");
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    socket.on("error", () => undefined);
    socket.write("POST /v1/login HTTP/1.1\r\nHost: x\r\n");
    const started = Date.now();
    await new Promise((resolve) => socket.once("close", resolve));
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("takes the client address from X-Forwarded-For only when a trusted proxy sends it", async () => {
    const limited = { ...config, VERIFY_MAX_PER_ADDR_PER_HOUR: 1, GATE_TRUST_PROXY: ["127.0.0.1"] };
    const verify = createVerifyService({
      codes: new RedisVerifyCodeStore(redis, `${config.REDIS_KEY_PREFIX}xff:`),
      limiter: new RedisRateLimiter(redis, `${config.REDIS_KEY_PREFIX}xff:`),
      mailer,
      config: limited,
      log,
    });
    const proxied = await gateWith(status, users, { verify, config: limited });
    extraApps.push(proxied);
    const ask = async (remoteAddress: string, forwardedFor: string, email: string) =>
      (
        await proxied.inject({
          method: "POST",
          url: "/v1/verify-code",
          remoteAddress,
          headers: { "x-forwarded-for": forwardedFor },
          payload: { email },
        })
      ).json().error;
    // Behind the trusted proxy, each forwarded client has its own allowance ...
    expect(await ask("127.0.0.1", "198.51.100.1", "xff1@example.com")).toBe(ErrorCode.OK);
    expect(await ask("127.0.0.1", "198.51.100.2", "xff2@example.com")).toBe(ErrorCode.OK);
    expect(await ask("127.0.0.1", "198.51.100.1", "xff3@example.com")).toBe(ErrorCode.RATE_LIMITED);
    // ... while a client reaching gate directly cannot pick a fresh address with the header.
    expect(await ask("192.0.2.9", "198.51.100.3", "xff4@example.com")).toBe(ErrorCode.OK);
    expect(await ask("192.0.2.9", "198.51.100.4", "xff5@example.com")).toBe(ErrorCode.RATE_LIMITED);
    for (const to of ["xff1", "xff2", "xff4"]) await sink.waitForMail(`${to}@example.com`);
  });

  it("keeps a proxy's X-Request-Id and makes one otherwise", async () => {
    const kept = await app.inject({ method: "GET", url: "/healthz", headers: { "x-request-id": "req-from-nginx" } });
    expect(kept.headers["x-request-id"]).toBe("req-from-nginx");
    const made = await app.inject({ method: "GET", url: "/healthz" });
    expect(made.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("logs out this device's token, then every token of the user", async () => {
    const uid = await register("leaver", "leaver@example.com", "leaver password");
    const loginAs = async (device: string) =>
      (await post("/v1/login", { user: "leaver", password: "leaver password", device })).json.token as string;
    const [web, desktop] = [await loginAs("web"), await loginAs("desktop")];
    const logout = async (token: string, body: object = {}) => {
      const res = await app.inject({
        method: "POST",
        url: "/v1/logout",
        headers: { authorization: `Bearer ${token}`, "x-uid": uid },
        payload: body,
      });
      return { status: res.statusCode, json: res.json() };
    };
    const check = async (token: string) => (await status.checkToken({ uid, token })).error;

    expect(await logout(web)).toEqual({ status: 200, json: { error: ErrorCode.OK, revoked: 1 } });
    expect(await check(web)).toBe(ErrorCode.TOKEN_INVALID);
    expect(await check(desktop)).toBe(ErrorCode.OK);
    // A revoked token cannot log out again (nor do anything else).
    expect((await logout(web)).json.error).toBe(ErrorCode.TOKEN_INVALID);

    const phone = await loginAs("mobile");
    expect(await logout(desktop, { all: true })).toEqual({ status: 200, json: { error: ErrorCode.OK, revoked: 2 } });
    expect([await check(desktop), await check(phone)]).toEqual([ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_INVALID]);
    expect((await logout("", {})).json.error).toBe(ErrorCode.TOKEN_INVALID);
  });

  it("deletes an account with DELETE /v1/account and the password again; wrong ones count in the login lockout", async () => {
    const deleted: string[] = [];
    const withAccounts = await gateWith(status, users, { accounts: { request: async (uid) => deleted.push(uid) } });
    extraApps.push(withAccounts);
    const loginOf = async (user: string, password: string) => {
      const res = await post("/v1/login", { user, password });
      return { uid: res.json.uid as string, token: res.json.token as string };
    };
    const remove = async (target: FastifyInstance, who: { uid: string; token: string }, body: object) => {
      const res = await target.inject({
        method: "DELETE",
        url: "/v1/account",
        headers: { authorization: `Bearer ${who.token}`, "x-uid": who.uid },
        payload: body,
      });
      return { status: res.statusCode, json: res.json() };
    };
    await register("quitter", "quitter@example.com", "quitters password");
    const quitter = await loginOf("quitter", "quitters password");
    // A gate without the use case does not serve the route.
    expect((await remove(app, quitter, { password: "quitters password" })).json.error).toBe(ErrorCode.NOT_FOUND);
    expect((await remove(withAccounts, quitter, {})).json.error).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(
      (await remove(withAccounts, { ...quitter, token: "forged" }, { password: "quitters password" })).json.error,
    ).toBe(ErrorCode.TOKEN_INVALID);
    expect(await remove(withAccounts, quitter, { password: "quitters password" })).toEqual({
      status: 200,
      json: { error: ErrorCode.OK },
    });
    expect(deleted).toEqual([quitter.uid]);

    // Wrong passwords: BAD_CREDENTIALS, counted with the login's failures, until both lock.
    await register("guesser", "guesser@example.com", "guessers password");
    const guesser = await loginOf("guesser", "guessers password");
    for (let i = 0; i < config.LOGIN_MAX_FAILURES; i++) {
      expect(await remove(withAccounts, guesser, { password: `guess ${i}` })).toEqual({
        status: 401,
        json: { error: ErrorCode.BAD_CREDENTIALS, message: "BAD_CREDENTIALS" },
      });
    }
    expect((await remove(withAccounts, guesser, { password: "guessers password" })).json.error).toBe(
      ErrorCode.ACCOUNT_LOCKED,
    );
    expect((await post("/v1/login", { user: "guesser", password: "guessers password" })).json.error).toBe(
      ErrorCode.ACCOUNT_LOCKED,
    );
    expect(deleted).toEqual([quitter.uid]);
  });

  it("resets a password with a mailed code: the new one works, the old one no longer does", async () => {
    const uid = await register("erin", "erin@example.com", "old password");
    // A token from before the reset: the reset revokes it.
    const before = await post("/v1/login", { user: "erin", password: "old password" });
    expect((await status.checkToken({ uid, token: before.json.token as string })).error).toBe(ErrorCode.OK);
    const res = await post("/v1/reset-password", {
      email: "Erin@example.com",
      password: "new password",
      code: await mailedCode("erin@example.com"),
    });
    expect(res).toEqual({ status: 200, json: { error: ErrorCode.OK } });
    expect((await status.checkToken({ uid, token: before.json.token as string })).error).toBe(ErrorCode.TOKEN_INVALID);
    expect((await post("/v1/login", { user: "erin", password: "new password" })).json.error).toBe(ErrorCode.OK);
    expect((await post("/v1/login", { user: "erin", password: "old password" })).json.error).toBe(
      ErrorCode.BAD_CREDENTIALS,
    );

    const wrongCode = await post("/v1/reset-password", {
      email: "erin@example.com",
      password: "another password",
      code: "000000",
    });
    expect(wrongCode.json.error).toBe(ErrorCode.VERIFY_CODE_WRONG);

    const notACode = await post("/v1/reset-password", {
      email: "erin@example.com",
      password: "another password",
      code: "abc",
    });
    expect(notACode.json.error).toBe(ErrorCode.INVALID_ARGUMENT);

    const unknown = await post("/v1/reset-password", {
      email: "ghost@example.com",
      password: "new password",
      code: await mailedCode("ghost@example.com"),
    });
    expect(unknown).toMatchObject({ status: 401, json: { error: ErrorCode.BAD_CREDENTIALS } });
  });

  it("stores salted scrypt hashes, never the password", async () => {
    await register("frank", "frank@example.com", "same password");
    await register("grace", "grace@example.com", "same password");
    const frank = await users.byName("frank");
    const grace = await users.byName("grace");
    expect(frank?.passwordHash).toMatch(/^scrypt\$/);
    expect(frank?.passwordHash).not.toContain("same password");
    expect(frank?.passwordHash).not.toBe(grace?.passwordHash);
  });

  it("answers NO_CHAT_NODE when no chat node is live", async () => {
    await register("heidi", "heidi@example.com", "heidis password");
    const lonely = await gateWith(statusOver(`${config.REDIS_KEY_PREFIX}empty:`));
    extraApps.push(lonely);
    const res = await post("/v1/login", { user: "heidi", password: "heidis password" }, lonely);
    expect(res).toMatchObject({ status: 503, json: { error: ErrorCode.NO_CHAT_NODE } });
  });

  it("answers UNAVAILABLE when status does not answer", async () => {
    await register("ivan", "ivan@example.com", "ivans password");
    const client = grpcClient(StatusServiceService, `127.0.0.1:${await freePort()}`, { deadlineMs: 1000 });
    try {
      const cut = await gateWith(client.api);
      extraApps.push(cut);
      const res = await post("/v1/login", { user: "ivan", password: "ivans password" }, cut);
      expect(res).toMatchObject({ status: 503, json: { error: ErrorCode.UNAVAILABLE } });
    } finally {
      client.close();
    }
  });

  it("answers UNAVAILABLE when MySQL does not answer", async () => {
    const url = new URL(config.MYSQL_URL);
    url.port = String(await freePort());
    const deadPool = createPool({ MYSQL_URL: url.toString(), MYSQL_POOL_SIZE: 1 });
    try {
      const cut = await gateWith(status, new MysqlUserStore(deadPool));
      extraApps.push(cut);
      const res = await post("/v1/login", { user: "anyone", password: "whatever" }, cut);
      expect(res).toMatchObject({ status: 503, json: { error: ErrorCode.UNAVAILABLE } });
    } finally {
      await deadPool.end();
    }
  });

  it("answers INTERNAL for an unexpected failure and keeps serving", async () => {
    // A database without the schema: the query fails in a way no route expects.
    const url = new URL(config.MYSQL_URL);
    url.pathname = `${url.pathname}_noschema`;
    const admin = createPool({ MYSQL_URL: config.MYSQL_URL, MYSQL_POOL_SIZE: 1 });
    await admin.query(`CREATE DATABASE IF NOT EXISTS \`${url.pathname.slice(1)}\``);
    const brokenPool = createPool({ MYSQL_URL: url.toString(), MYSQL_POOL_SIZE: 1 });
    try {
      const broken = await gateWith(status, new MysqlUserStore(brokenPool));
      extraApps.push(broken);
      const res = await post("/v1/login", { user: "anyone", password: "whatever" }, broken);
      expect(res).toEqual({ status: 500, json: { error: ErrorCode.INTERNAL, message: "internal error" } });
      expect(await call("GET", "/healthz", undefined, broken)).toEqual({ status: 200, json: { error: 0 } });
    } finally {
      await brokenPool.end();
      await admin.query(`DROP DATABASE IF EXISTS \`${url.pathname.slice(1)}\``);
      await admin.end();
    }
  });
});

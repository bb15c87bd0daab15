import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../src/config/settings.js";
import { ErrorCode } from "../src/errors.js";
import { VerifyServiceService } from "../src/gen/shardchat/v1/verify.js";
import { type Api, addApi, grpcClient, startGrpcServer } from "../src/grpc/api.js";
import { createLogger } from "../src/log/logger.js";
import { SmtpMailer } from "../src/mail/smtp-mailer.js";
import { RedisRateLimiter } from "../src/routing/redis/rate-limiter.js";
import { RedisVerifyCodeStore } from "../src/routing/redis/verify-code-store.js";
import { createRedis } from "../src/routing/redis-client.js";
import { secretDigest } from "../src/routing/secret-digest.js";
import { createVerifyService } from "../src/verify/service.js";
import { testConfig } from "./helpers/env.js";
import { freePort } from "./helpers/ports.js";
import { codeFromMail, startSmtpSink } from "./helpers/smtp-sink.js";

type VerifyApi = Api<typeof VerifyServiceService>;

let sink: Awaited<ReturnType<typeof startSmtpSink>>;
let base: Config;
let redis: Redis | Cluster;
const closers: (() => Promise<void> | void)[] = [];

/** verify served over real gRPC with Redis adapters; `overrides` tune the limits for one case. */
async function serveVerify(overrides: Partial<Config> = {}): Promise<VerifyApi> {
  const config = { ...base, ...overrides };
  const log = createLogger("verify-test", config.LOG_LEVEL);
  const mailer = new SmtpMailer(config.SMTP_URL, config.MAIL_FROM);
  const service = createVerifyService({
    codes: new RedisVerifyCodeStore(redis, config.REDIS_KEY_PREFIX),
    limiter: new RedisRateLimiter(redis, config.REDIS_KEY_PREFIX),
    mailer,
    config,
    log,
  });
  const server = await startGrpcServer("127.0.0.1:0", (s) => addApi(s, VerifyServiceService, service));
  const client = grpcClient(VerifyServiceService, `127.0.0.1:${server.port}`, { deadlineMs: 15_000 });
  closers.push(
    () => client.close(),
    () => server.close(),
    () => mailer.close(),
  );
  return client.api;
}

function otherCode(code: string): string {
  return String((Number(code) + 1) % 1_000_000).padStart(6, "0");
}

async function mailedCode(api: VerifyApi, email: string, clientAddr = "10.0.0.1"): Promise<string> {
  const reply = await api.getVerifyCode({ email, clientAddr });
  expect(reply.error).toBe(ErrorCode.OK);
  return codeFromMail(await sink.waitForMail(email.trim().toLowerCase()));
}

beforeAll(async () => {
  sink = await startSmtpSink();
  base = testConfig({ SMTP_URL: sink.url, VERIFY_COOLDOWN_SECONDS: 60, VERIFY_MAX_PER_ADDR_PER_HOUR: 1000 });
  redis = createRedis(base);
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  const keys = await redis.keys(`${base.REDIS_KEY_PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
  await sink.close();
});

describe("verify over gRPC", () => {
  it("mails a 6-digit code, enforces the cool-down, and consumes the code once", async () => {
    const api = await serveVerify();
    const first = await api.getVerifyCode({ email: "  Alice@Example.COM ", clientAddr: "10.0.0.1" });
    expect(first).toEqual({ error: ErrorCode.OK, retryAfterSeconds: 60 });
    const mail = await sink.waitForMail("alice@example.com");
    const code = codeFromMail(mail);
    // Redis keeps the code's digest only.
    const stored = await new RedisVerifyCodeStore(redis, base.REDIS_KEY_PREFIX).get("alice@example.com");
    expect(stored?.code).toBe(secretDigest(code));
    expect(code).toMatch(/^\d{6}$/);
    expect(mail.subject).toContain(code);
    expect(mail.text).toContain(code);

    const again = await api.getVerifyCode({ email: "alice@example.com", clientAddr: "10.0.0.1" });
    expect(again.error).toBe(ErrorCode.VERIFY_CODE_COOLDOWN);
    expect(again.retryAfterSeconds).toBeGreaterThan(0);
    expect(again.retryAfterSeconds).toBeLessThanOrEqual(60);

    expect(
      await api.consumeVerifyCode({ email: "alice@example.com", code: otherCode(code), checkOnly: false }),
    ).toEqual({
      error: ErrorCode.VERIFY_CODE_WRONG,
    });
    expect(await api.consumeVerifyCode({ email: "ALICE@example.com", code, checkOnly: false })).toEqual({
      error: ErrorCode.OK,
    });
    expect(await api.consumeVerifyCode({ email: "alice@example.com", code, checkOnly: false })).toEqual({
      error: ErrorCode.VERIFY_CODE_WRONG,
    });
  });

  it("answers WRONG for an email that never got a code and INVALID_ARGUMENT for a malformed email", async () => {
    const api = await serveVerify();
    expect((await api.consumeVerifyCode({ email: "nobody@example.com", code: "123456", checkOnly: false })).error).toBe(
      ErrorCode.VERIFY_CODE_WRONG,
    );
    for (const email of ["", "not-an-email", "a@b", "a b@example.com", "x@example.com\r\nBcc: y@example.com"]) {
      expect((await api.getVerifyCode({ email, clientAddr: "10.0.0.1" })).error).toBe(ErrorCode.INVALID_ARGUMENT);
    }
  });

  it("limits codes per client address", async () => {
    const api = await serveVerify({ VERIFY_MAX_PER_ADDR_PER_HOUR: 3 });
    for (let i = 0; i < 3; i++) await mailedCode(api, `addr${i}@example.com`, "10.9.9.9");
    const limited = await api.getVerifyCode({ email: "addr3@example.com", clientAddr: "10.9.9.9" });
    expect(limited.error).toBe(ErrorCode.RATE_LIMITED);
    expect(limited.retryAfterSeconds).toBeGreaterThan(0);
    // Another address is not affected.
    await mailedCode(api, "addr3@example.com", "10.9.9.10");
  });

  it("tells an expired code apart from a wrong one", async () => {
    const api = await serveVerify({ VERIFY_CODE_TTL_SECONDS: 1 });
    const code = await mailedCode(api, "late@example.com");
    await new Promise((r) => setTimeout(r, 1200));
    expect((await api.consumeVerifyCode({ email: "late@example.com", code, checkOnly: false })).error).toBe(
      ErrorCode.VERIFY_CODE_EXPIRED,
    );
  });

  it("burns a code after VERIFY_MAX_ATTEMPTS wrong guesses, not before", async () => {
    const api = await serveVerify({ VERIFY_MAX_ATTEMPTS: 5 });

    const survivor = await mailedCode(api, "guess4@example.com");
    for (let i = 0; i < 4; i++) {
      expect(
        (await api.consumeVerifyCode({ email: "guess4@example.com", code: otherCode(survivor), checkOnly: false }))
          .error,
      ).toBe(ErrorCode.VERIFY_CODE_WRONG);
    }
    expect((await api.consumeVerifyCode({ email: "guess4@example.com", code: survivor, checkOnly: false })).error).toBe(
      ErrorCode.OK,
    );

    const burned = await mailedCode(api, "guess5@example.com");
    for (let i = 0; i < 5; i++) {
      expect(
        (await api.consumeVerifyCode({ email: "guess5@example.com", code: otherCode(burned), checkOnly: false })).error,
      ).toBe(ErrorCode.VERIFY_CODE_WRONG);
    }
    expect((await api.consumeVerifyCode({ email: "guess5@example.com", code: burned, checkOnly: false })).error).toBe(
      ErrorCode.VERIFY_CODE_WRONG,
    );
    // A burned code keeps its cool-down: burning one is no way to get the next one sooner.
    expect((await api.getVerifyCode({ email: "guess5@example.com", clientAddr: "10.0.0.1" })).error).toBe(
      ErrorCode.VERIFY_CODE_COOLDOWN,
    );
  });

  it("compares no more than VERIFY_MAX_ATTEMPTS guesses of many sent at once", async () => {
    const api = await serveVerify({ VERIFY_MAX_ATTEMPTS: 5 });
    const code = await mailedCode(api, "racing@example.com");
    // 199 wrong guesses and, sent last, the right one, all in flight together.
    const guesses = Array.from({ length: 199 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, "0"));
    const replies = await Promise.all(
      [...guesses, code].map((guess) =>
        api.consumeVerifyCode({ email: "racing@example.com", code: guess, checkOnly: false }),
      ),
    );
    expect(replies.filter((r) => r.error === ErrorCode.OK)).toEqual([]);
    expect((await api.consumeVerifyCode({ email: "racing@example.com", code, checkOnly: false })).error).toBe(
      ErrorCode.VERIFY_CODE_WRONG,
    );
  });

  it("checks a code without using it up, a wrong check counting as a guess", async () => {
    const api = await serveVerify({ VERIFY_MAX_ATTEMPTS: 3 });
    const code = await mailedCode(api, "check@example.com");
    const check = (guess: string) =>
      api.consumeVerifyCode({ email: "check@example.com", code: guess, checkOnly: true });
    expect((await check(code)).error).toBe(ErrorCode.OK);
    expect((await check(code)).error).toBe(ErrorCode.OK);
    expect((await check(otherCode(code))).error).toBe(ErrorCode.VERIFY_CODE_WRONG);
    expect((await check(otherCode(code))).error).toBe(ErrorCode.VERIFY_CODE_WRONG);
    expect((await api.consumeVerifyCode({ email: "check@example.com", code, checkOnly: false })).error).toBe(
      ErrorCode.OK,
    );
    expect((await check(code)).error).toBe(ErrorCode.VERIFY_CODE_WRONG);
  });

  it("sends one email no more than VERIFY_MAX_PER_EMAIL_PER_DAY codes, whoever asks", async () => {
    const api = await serveVerify({ VERIFY_MAX_PER_EMAIL_PER_DAY: 2 });
    for (const addr of ["10.1.0.1", "10.1.0.2"]) {
      const code = await mailedCode(api, "daily@example.com", addr);
      // Using the code lifts the cool-down, so only the daily cap is left to stop the next one.
      expect((await api.consumeVerifyCode({ email: "daily@example.com", code, checkOnly: false })).error).toBe(
        ErrorCode.OK,
      );
    }
    const third = await api.getVerifyCode({ email: "daily@example.com", clientAddr: "10.1.0.3" });
    expect(third.error).toBe(ErrorCode.RATE_LIMITED);
    expect(third.retryAfterSeconds).toBeGreaterThan(3600);
    // Another email is not affected.
    await mailedCode(api, "daily2@example.com", "10.1.0.3");
  });

  it("answers MAIL_FAILED when SMTP is down and lifts the cool-down", async () => {
    const deadSmtp = `smtp://127.0.0.1:${await freePort()}`;
    const down = await serveVerify({ SMTP_URL: deadSmtp });
    const failed = await down.getVerifyCode({ email: "bounce@example.com", clientAddr: "10.0.0.1" });
    expect(failed.error).toBe(ErrorCode.MAIL_FAILED);
    // The never-delivered code is gone, so it cannot be used ...
    expect(
      (await down.consumeVerifyCode({ email: "bounce@example.com", code: "000000", checkOnly: false })).error,
    ).toBe(ErrorCode.VERIFY_CODE_WRONG);
    // ... and a retry through a working mailer is not held back by the cool-down.
    const up = await serveVerify();
    const code = await mailedCode(up, "bounce@example.com");
    expect((await up.consumeVerifyCode({ email: "bounce@example.com", code, checkOnly: false })).error).toBe(
      ErrorCode.OK,
    );
  });

  it("mails an address exactly once when many requests race, whichever verify process they reach", async () => {
    const [one, two] = [await serveVerify(), await serveVerify()];
    const email = "race@example.com";
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? one : two).getVerifyCode({ email, clientAddr: `10.1.0.${i}` })),
    );
    expect(replies.filter((r) => r.error === ErrorCode.OK)).toHaveLength(1);
    expect(replies.filter((r) => r.error === ErrorCode.VERIFY_CODE_COOLDOWN)).toHaveLength(11);
    const code = codeFromMail(await sink.waitForMail(email));
    // waitForMail took the one mail; a second would still be in the sink.
    expect(sink.mails.filter((m) => m.to.includes(email))).toHaveLength(0);
    expect((await one.consumeVerifyCode({ email, code, checkOnly: false })).error).toBe(ErrorCode.OK);
  });
});

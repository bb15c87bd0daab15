import { randomInt } from "node:crypto";
import type { Config } from "../config/settings.js";
import { ErrorCode } from "../errors.js";
import type { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import type { Api } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";
import type { Mailer } from "../mail/ports.js";
import type { RateLimiter, VerifyCodeStore } from "../routing/ports.js";
import { secretDigest } from "../routing/secret-digest.js";
import { isValidEmail, normalizeEmail } from "./email.js";

type VerifyConfig = Pick<
  Config,
  | "VERIFY_CODE_TTL_SECONDS"
  | "VERIFY_COOLDOWN_SECONDS"
  | "VERIFY_MAX_PER_ADDR_PER_HOUR"
  | "VERIFY_MAX_PER_EMAIL_PER_DAY"
  | "VERIFY_MAX_ATTEMPTS"
>;

export interface VerifyDeps {
  codes: VerifyCodeStore;
  limiter: RateLimiter;
  mailer: Mailer;
  config: VerifyConfig;
  log: Logger;
}

const HOUR_SECONDS = 3600;
const DAY_SECONDS = 24 * HOUR_SECONDS;

/** Six digits, leading zeros kept: a string, never a number. */
function newCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, "0");
}

/**
 * verify: makes, mails and checks codes. The per-email cool-down is a slot taken atomically in
 * the shared RateLimiter before anything is mailed, so of any number of concurrent requests
 * (through any gate, any verify process) at most one mails an address per cool-down. The slot
 * is given back when the mail fails and when the code is used, not when wrong guesses burn it
 * (or guessing would go on at one code per burn). Guesses are counted by the code store in the
 * same atomic step as the comparison.
 */
export function createVerifyService(deps: VerifyDeps): Api<typeof VerifyServiceService> {
  const { codes, limiter, mailer, config, log } = deps;
  const ttlMs = config.VERIFY_CODE_TTL_SECONDS * 1000;
  const cooldownKey = (email: string) => `verify:cooldown:${email}`;

  return {
    async getVerifyCode(request, meta) {
      const email = normalizeEmail(request.email);
      if (!isValidEmail(email)) return { error: ErrorCode.INVALID_ARGUMENT, retryAfterSeconds: 0 };

      const perAddr = await limiter.hit(
        `verify:addr:${request.clientAddr || "unknown"}`,
        config.VERIFY_MAX_PER_ADDR_PER_HOUR,
        HOUR_SECONDS,
      );
      if (!perAddr.allowed) return { error: ErrorCode.RATE_LIMITED, retryAfterSeconds: perAddr.retryAfterSeconds };

      const slot = await limiter.hit(cooldownKey(email), 1, config.VERIFY_COOLDOWN_SECONDS);
      if (!slot.allowed) return { error: ErrorCode.VERIFY_CODE_COOLDOWN, retryAfterSeconds: slot.retryAfterSeconds };
      // Counted only once the cool-down let it through, so waiting out a cool-down costs nothing.
      const daily = await limiter.hit(`verify:daily:${email}`, config.VERIFY_MAX_PER_EMAIL_PER_DAY, DAY_SECONDS);
      if (!daily.allowed) {
        await limiter.reset(cooldownKey(email));
        return { error: ErrorCode.RATE_LIMITED, retryAfterSeconds: daily.retryAfterSeconds };
      }

      const code = newCode();
      try {
        await codes.put(email, { code: secretDigest(code), expiresAtMs: Date.now() + ttlMs });
      } catch (err) {
        await limiter.reset(cooldownKey(email)).catch(() => {});
        throw err;
      }
      try {
        await mailer.send({
          to: email,
          subject: `Your shardchat code: ${code}`,
          text: `Your shardchat verification code is ${code}. It is valid for ${Math.ceil(config.VERIFY_CODE_TTL_SECONDS / 60)} minutes.`,
        });
      } catch (err) {
        log.warn({ err, email, requestId: meta?.requestId }, "verify mail failed");
        // The user never saw this code: drop it so they may ask again at once.
        await codes.consume(email, secretDigest(code));
        await limiter.reset(cooldownKey(email));
        return { error: ErrorCode.MAIL_FAILED, retryAfterSeconds: 0 };
      }
      log.info({ requestId: meta?.requestId }, "verify code mailed");
      return { error: ErrorCode.OK, retryAfterSeconds: config.VERIFY_COOLDOWN_SECONDS };
    },

    async consumeVerifyCode(request) {
      const email = normalizeEmail(request.email);
      if (!isValidEmail(email)) return { error: ErrorCode.INVALID_ARGUMENT };
      const found = await codes.attempt(email, secretDigest(request.code.trim()), {
        maxAttempts: config.VERIFY_MAX_ATTEMPTS,
        consume: !request.checkOnly,
        nowMs: Date.now(),
      });
      if (found === "expired") return { error: ErrorCode.VERIFY_CODE_EXPIRED };
      if (found !== "ok") return { error: ErrorCode.VERIFY_CODE_WRONG };
      // Only the mailbox's owner gets here: a next flow (reset after register) may mail at once.
      if (!request.checkOnly) await limiter.reset(cooldownKey(email));
      return { error: ErrorCode.OK };
    },
  };
}

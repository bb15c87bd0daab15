import { randomInt, timingSafeEqual } from "node:crypto";
import type { Config } from "../config/settings.js";
import { ErrorCode } from "../errors.js";
import type { VerifyServiceService } from "../gen/shardchat/v1/verify.js";
import type { Api } from "../grpc/api.js";
import type { Logger } from "../log/logger.js";
import type { Mailer } from "../mail/ports.js";
import type { RateLimiter, StoredCode, VerifyCodeStore } from "../routing/ports.js";
import { isValidEmail, normalizeEmail } from "./email.js";

type VerifyConfig = Pick<
  Config,
  "VERIFY_CODE_TTL_SECONDS" | "VERIFY_COOLDOWN_SECONDS" | "VERIFY_MAX_PER_ADDR_PER_HOUR" | "VERIFY_MAX_ATTEMPTS"
>;

export interface VerifyDeps {
  codes: VerifyCodeStore;
  limiter: RateLimiter;
  mailer: Mailer;
  config: VerifyConfig;
  log: Logger;
}

const HOUR_SECONDS = 3600;

/** Six digits, leading zeros kept: a string, never a number. */
function newCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, "0");
}

function sameCode(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * verify: makes, mails and checks codes. The per-email cool-down is a slot taken atomically in
 * the shared RateLimiter before anything is mailed, so of any number of concurrent requests
 * (through any gate, any verify process) at most one mails an address per cool-down. The slot
 * is given back when the mail fails, when a code is burned by wrong guesses, and when the code is used.
 */
export function createVerifyService(deps: VerifyDeps): Api<typeof VerifyServiceService> {
  const { codes, limiter, mailer, config, log } = deps;
  const ttlMs = config.VERIFY_CODE_TTL_SECONDS * 1000;
  const cooldownKey = (email: string) => `verify:cooldown:${email}`;

  /** Counts a wrong guess against this one code; the last allowed guess burns it. */
  async function countWrongGuess(email: string, stored: StoredCode, now: number): Promise<void> {
    const windowSeconds = Math.max(1, Math.ceil((stored.expiresAtMs - now) / 1000));
    const key = `verify:attempts:${email}:${stored.expiresAtMs}`;
    const { allowed } = await limiter.hit(key, config.VERIFY_MAX_ATTEMPTS - 1, windowSeconds);
    if (!allowed) {
      await codes.consume(email, stored.code);
      await limiter.reset(cooldownKey(email));
      log.info({ email }, "verify code burned after too many wrong guesses");
    }
  }

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

      const code = newCode();
      try {
        await codes.put(email, { code, expiresAtMs: Date.now() + ttlMs });
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
        await codes.consume(email, code);
        await limiter.reset(cooldownKey(email));
        return { error: ErrorCode.MAIL_FAILED, retryAfterSeconds: 0 };
      }
      log.info({ requestId: meta?.requestId }, "verify code mailed");
      return { error: ErrorCode.OK, retryAfterSeconds: config.VERIFY_COOLDOWN_SECONDS };
    },

    async consumeVerifyCode(request) {
      const email = normalizeEmail(request.email);
      const code = request.code.trim();
      if (!isValidEmail(email)) return { error: ErrorCode.INVALID_ARGUMENT };

      const stored = await codes.get(email);
      if (!stored) return { error: ErrorCode.VERIFY_CODE_WRONG };
      const now = Date.now();
      if (now > stored.expiresAtMs) return { error: ErrorCode.VERIFY_CODE_EXPIRED };
      if (!sameCode(stored.code, code)) {
        await countWrongGuess(email, stored, now);
        return { error: ErrorCode.VERIFY_CODE_WRONG };
      }
      // Compare-and-delete: of two racing uses of one code, only one gets OK.
      if (!(await codes.consume(email, code))) return { error: ErrorCode.VERIFY_CODE_WRONG };
      // Only the mailbox's owner gets here: a next flow (reset after register) may mail at once.
      await limiter.reset(cooldownKey(email));
      return { error: ErrorCode.OK };
    },
  };
}

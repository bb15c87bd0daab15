import { AppError, ErrorCode } from "../errors.js";
import { HostList } from "../push/devices.js";

/**
 * A bot's password hash: no password matches it (verifyPassword refuses anything that is not a
 * scrypt hash), and gate's login and password reset tell it apart from a user without a
 * password by it, with no read of the bots table: they answer BOT_ACCOUNT. It stays when the bot
 * is deleted: the account never logs in (README "Bots").
 */
export const BOT_PASSWORD_HASH = "!bot";

export function isBotAccount(user: { passwordHash: string }): boolean {
  return user.passwordHash === BOT_PASSWORD_HASH;
}

/** AppError(BOT_ACCOUNT) for a login or password reset of a bot's account. */
export function botLoginRefused(): AppError {
  return new AppError(
    ErrorCode.BOT_ACCOUNT,
    "this is a bot's account: it never logs in; send as it with the Server API (POST /admin/v1/messages, from = its uid)",
  );
}

/** The email a bot's user row holds: unique by uid, and on a domain that receives no mail (RFC 2606). */
export function botEmail(uid: string): string {
  return `bot-${uid}@bots.invalid`;
}

/**
 * A bot's webhook URL as the Server API takes it: absolute http(s), no user or password in it
 * (they would end up in logs), at most maxChars, its host on `hosts` when that list is set
 * (BOTS_WEBHOOK_HOSTS); AppError(INVALID_ARGUMENT) naming the problem otherwise.
 */
export function checkBotWebhookUrl(url: string, limits: { maxChars: number; hosts: string }): string {
  const bad = (why: string) => new AppError(ErrorCode.INVALID_ARGUMENT, `webhookUrl: ${why}`);
  if ([...url].length > limits.maxChars) throw bad(`at most ${limits.maxChars} characters`);
  if (url.trim() !== url || /\s/.test(url)) throw bad("no spaces");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad("not an absolute URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw bad("not http or https");
  if (parsed.username !== "" || parsed.password !== "") throw bad("no user or password in the URL");
  if (parsed.hash !== "") throw bad("no #fragment");
  if (limits.hosts.trim() !== "") {
    const host = parsed.hostname.replace(/^\[|\]$/g, "");
    if (!new HostList(limits.hosts).allows(host)) throw bad(`host ${host} is not on BOTS_WEBHOOK_HOSTS`);
  }
  return url;
}

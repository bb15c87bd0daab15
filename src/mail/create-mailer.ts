import type { Config } from "../config/settings.js";
import type { Logger } from "../log/logger.js";
import { LogMailer } from "./log-mailer.js";
import type { Mailer } from "./ports.js";
import { SmtpMailer } from "./smtp-mailer.js";

/** SMTP when SMTP_URL is set, the log otherwise. */
export function createMailer(config: Pick<Config, "SMTP_URL" | "MAIL_FROM">, log: Logger): Mailer {
  return config.SMTP_URL ? new SmtpMailer(config.SMTP_URL, config.MAIL_FROM) : new LogMailer(log);
}

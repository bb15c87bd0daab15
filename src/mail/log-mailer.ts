import type { Logger } from "../log/logger.js";
import type { Mailer, OutgoingMail } from "./ports.js";

/**
 * Writes each mail, verify code included, to the log: the embedded default runs without an
 * SMTP server, and whoever runs it reads the code there.
 */
export class LogMailer implements Mailer {
  constructor(private readonly log: Logger) {}

  async send(mail: OutgoingMail): Promise<void> {
    this.log.info({ mail: { to: mail.to, subject: mail.subject, text: mail.text } }, "mail (SMTP_URL is empty)");
  }
}

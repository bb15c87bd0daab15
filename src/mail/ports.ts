export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
}

/** Sends mail: SMTP in production, the log in the embedded default. */
export interface Mailer {
  send(mail: OutgoingMail): Promise<void>;
}

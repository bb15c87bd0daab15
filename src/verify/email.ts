/** The longest address SMTP carries (RFC 5321 path limit), also the users.email column width. */
export const MAX_EMAIL_LENGTH = 254;

const EMAIL_PATTERN =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** Emails are keyed trimmed and lower-cased everywhere, so "A@x.io " and "a@x.io" are one account. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** A plain address: no display name, no whitespace or line breaks (nothing to inject into mail headers). */
export function isValidEmail(email: string): boolean {
  return email.length <= MAX_EMAIL_LENGTH && EMAIL_PATTERN.test(email);
}

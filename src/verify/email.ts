import { COLUMN_CHARS } from "../ids/identifiers.js";

const EMAIL_PATTERN =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** Emails are keyed trimmed and lower-cased everywhere, so "A@x.io " and "a@x.io" are one account. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/**
 * A plain address: no display name, no whitespace or line breaks (nothing to inject into mail
 * headers), at most the longest path SMTP carries (RFC 5321), which is the email column's width.
 */
export function isValidEmail(email: string): boolean {
  return email.length <= COLUMN_CHARS.email && EMAIL_PATTERN.test(email);
}

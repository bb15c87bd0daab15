import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Webhook signatures as the Standard Webhooks scheme has them (README "Webhooks"): the
 * HMAC-SHA256 of `${id}.${timestamp}.${body}`, base64, sent as `webhook-signature: v1,<sig>`
 * with `webhook-id` and `webhook-timestamp` (seconds). The key is the bytes of WEBHOOK_SECRET:
 * base64-decoded after a `whsec_` prefix (the scheme's form), else the secret's UTF-8 bytes.
 */

/** The HMAC key of a secret. */
export function signingKey(secret: string): Buffer {
  return secret.startsWith("whsec_")
    ? Buffer.from(secret.slice("whsec_".length), "base64")
    : Buffer.from(secret, "utf8");
}

/** The `webhook-signature` header's value for one call. */
export function signature(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", key).update(`${id}.${timestampSeconds}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** The three headers of a signed call. */
export function signedHeaders(key: Buffer, id: string, timestampSeconds: number, body: string): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": signature(key, id, timestampSeconds, body),
  };
}

/**
 * What a receiver checks (the README's example does the same in a few lines): one of the
 * space-separated `v1,` signatures matches, and the timestamp is within toleranceSeconds of now.
 */
export function verifySignature(
  key: Buffer,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  toleranceSeconds: number,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  const ts = Number(headers.timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = Buffer.from(signature(key, headers.id, ts, body));
  return headers.signature.split(" ").some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

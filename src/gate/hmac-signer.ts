import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * HMAC-SHA256 under one key, as gate signs what it hands a client to bring back (file links,
 * upload tickets). Each user puts its own prefix in the text, so a signature made for one
 * use never verifies as another's.
 */
export class HmacSigner {
  constructor(private readonly key: Buffer) {}

  /** The text's signature, base64url. */
  sign(text: string): string {
    return createHmac("sha256", this.key).update(text).digest("base64url");
  }

  /** Whether signature is text's, compared in constant time. */
  verifies(text: string, signature: string): boolean {
    const expected = Buffer.from(this.sign(text));
    const given = Buffer.from(signature);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}

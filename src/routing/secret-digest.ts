import { createHash } from "node:crypto";

/**
 * What the routing stores keep of a secret (a login token, a verify code): its SHA-256,
 * base64url. Whoever reads Redis (a dump, a replica, a MONITOR) learns no usable token or code;
 * the service that checks one digests what the client brought and compares digests.
 */
export function secretDigest(secret: string): string {
  return createHash("sha256").update(secret).digest("base64url");
}

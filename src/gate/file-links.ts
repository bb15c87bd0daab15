import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Config } from "../config/settings.js";

/**
 * Short-lived links to one file, signed by gate: what a browser puts in `<img src>` or a
 * download link instead of the chat token, which in a URL lands in access logs, proxies and
 * history. A link names the file and its expiry and carries an HMAC of both: whoever holds it
 * may fetch that one file until then, and nothing else.
 */
export class FileLinks {
  constructor(
    private readonly key: Buffer,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The path and query of a link to fileId, valid for the TTL from now. */
  sign(fileId: string): { path: string; expiresAtMs: number } {
    const expiresAtMs = this.now() + this.ttlMs;
    const query = new URLSearchParams({ exp: String(expiresAtMs), sig: this.mac(fileId, expiresAtMs) });
    return { path: `/v1/files/${encodeURIComponent(fileId)}?${query}`, expiresAtMs };
  }

  /** "ok", or why the link's exp and sig do not open fileId. */
  check(fileId: string, exp: unknown, sig: unknown): "ok" | "expired" | "invalid" {
    if (typeof exp !== "string" || typeof sig !== "string" || !/^\d{1,16}$/.test(exp)) return "invalid";
    const expected = Buffer.from(this.mac(fileId, Number(exp)));
    const given = Buffer.from(sig);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return "invalid";
    return Number(exp) < this.now() ? "expired" : "ok";
  }

  private mac(fileId: string, expiresAtMs: number): string {
    return createHmac("sha256", this.key).update(`${fileId}\n${expiresAtMs}`).digest("base64url");
  }
}

/**
 * The signing key: GATE_FILE_LINK_SECRET; else one derived from INTERNAL_AUTH_TOKEN, which every
 * gate of a cluster shares already (so a link made by one gate opens on another); else a random
 * key of this process (npm start's single gate: its links die with it, which a short link may).
 */
export function fileLinkKey(config: Pick<Config, "GATE_FILE_LINK_SECRET" | "INTERNAL_AUTH_TOKEN">): Buffer {
  if (config.GATE_FILE_LINK_SECRET) return Buffer.from(config.GATE_FILE_LINK_SECRET);
  if (config.INTERNAL_AUTH_TOKEN) return createHmac("sha256", config.INTERNAL_AUTH_TOKEN).update("file links").digest();
  return randomBytes(32);
}

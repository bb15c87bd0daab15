import { createHmac, randomBytes } from "node:crypto";
import type { Config } from "../config/settings.js";
import { HmacSigner } from "./hmac-signer.js";

/**
 * Short-lived links to one file, signed by gate: what a browser puts in `<img src>` or a
 * download link instead of the chat token, which in a URL lands in access logs, proxies and
 * history. A link names the file and its expiry and carries an HMAC of both: whoever holds it
 * may fetch that one file until then, and nothing else.
 */
export class FileLinks {
  readonly #signer: HmacSigner;

  constructor(
    key: Buffer,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#signer = new HmacSigner(key);
  }

  /** The path and query of a link to fileId (or its thumbnail), valid for the TTL from now. */
  sign(fileId: string, variant: FileVariant = "original"): { path: string; expiresAtMs: number } {
    const expiresAtMs = this.now() + this.ttlMs;
    const query = new URLSearchParams({
      exp: String(expiresAtMs),
      sig: this.#signer.sign(linkText(fileId, variant, expiresAtMs)),
    });
    const path = `/v1/files/${encodeURIComponent(fileId)}${variant === "thumbnail" ? "/thumbnail" : ""}`;
    return { path: `${path}?${query}`, expiresAtMs };
  }

  /** "ok", or why the link's exp and sig do not open fileId's variant (a file's link opens no thumbnail, and back). */
  check(fileId: string, exp: unknown, sig: unknown, variant: FileVariant = "original"): "ok" | "expired" | "invalid" {
    if (typeof exp !== "string" || typeof sig !== "string" || !/^\d{1,16}$/.test(exp)) return "invalid";
    if (!this.#signer.verifies(linkText(fileId, variant, Number(exp)), sig)) return "invalid";
    return Number(exp) < this.now() ? "expired" : "ok";
  }
}

/** A file's bytes as uploaded, or the thumbnail gate made of an image (issue 19). */
export type FileVariant = "original" | "thumbnail";

/**
 * What a link's signature covers: numbers (links are signed for stored ids only), and for a
 * thumbnail the word between them, unlike any other signed text.
 */
function linkText(fileId: string, variant: FileVariant, expiresAtMs: number): string {
  return variant === "thumbnail" ? `${fileId}\nthumbnail\n${expiresAtMs}` : `${fileId}\n${expiresAtMs}`;
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

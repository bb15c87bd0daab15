import { HmacSigner } from "./hmac-signer.js";

/** What gate checked when a direct upload started, and what the file's row will say once it completes. */
export interface UploadClaims {
  id: string;
  uid: string;
  convId: string;
  name: string;
  size: number;
  contentType: string;
  /** A recording's declared length (0: none). */
  durationMs: number;
}

/** Signed texts of tickets start so; file links' are two numbers (src/gate/file-links.ts). */
const PREFIX = "upload-ticket\n";

/**
 * Tickets for direct uploads (the client PUTs the bytes to the object store itself): gate
 * checks the upload when it starts and hands back what it checked, signed with the file
 * links' key and expiring; the completion trusts the ticket instead of asking again, and
 * needs no state kept between the two (any gate may complete what another started).
 * A ticket is `<payload>.<signature>`, the payload the claims and the expiry as base64url JSON.
 */
export class UploadTickets {
  readonly #signer: HmacSigner;

  constructor(
    key: Buffer,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.#signer = new HmacSigner(key);
  }

  /** A ticket for claims, valid for the TTL from now. */
  issue(claims: UploadClaims): { ticket: string; expiresAtMs: number } {
    const expiresAtMs = this.now() + this.ttlMs;
    const payload = Buffer.from(JSON.stringify({ ...claims, exp: expiresAtMs })).toString("base64url");
    return { ticket: `${payload}.${this.#signer.sign(PREFIX + payload)}`, expiresAtMs };
  }

  /**
   * The claims of a ticket gate issued, and whether it has expired (what it names may still be
   * cleaned up then), or "invalid".
   */
  check(ticket: unknown): { claims: UploadClaims; expired: boolean } | "invalid" {
    if (typeof ticket !== "string") return "invalid";
    const dot = ticket.indexOf(".");
    if (dot < 0) return "invalid";
    const payload = ticket.slice(0, dot);
    if (!this.#signer.verifies(PREFIX + payload, ticket.slice(dot + 1))) return "invalid";
    // Signed by gate: the JSON is what issue() wrote.
    const { exp, ...claims } = JSON.parse(Buffer.from(payload, "base64url").toString()) as UploadClaims & {
      exp: number;
    };
    return { claims, expired: exp < this.now() };
  }
}

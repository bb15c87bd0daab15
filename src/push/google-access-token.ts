import { createPrivateKey, type KeyObject, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../config/load.js";

/** What a service account key file (JSON, from the Google Cloud console) holds that we use. */
export interface ServiceAccount {
  clientEmail: string;
  privateKey: KeyObject;
  /** The key's id, sent as the assertion's `kid` so the token endpoint finds the public key at once. */
  privateKeyId: string | undefined;
  /** Where the assertion is exchanged for an access token (also its `aud`). */
  tokenUri: string;
  projectId: string;
}

/** The key file at `path`, checked: a missing field or an unreadable key stops the process at start. */
export function readServiceAccount(path: string): ServiceAccount {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`service account file ${path}: ${(err as Error).message}`);
  }
  const field = (name: string): string => {
    const value = json[name];
    if (typeof value !== "string" || value === "") {
      throw new ConfigError(`service account file ${path} has no ${name}`);
    }
    return value;
  };
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(field("private_key"));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`service account file ${path}: private_key is not a PEM key (${(err as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== "rsa") {
    throw new ConfigError(`service account file ${path}: private_key must be an RSA key (RS256)`);
  }
  const tokenUri = field("token_uri");
  if (!URL.canParse(tokenUri)) throw new ConfigError(`service account file ${path}: token_uri is not a URL`);
  const keyId = json.private_key_id;
  return {
    clientEmail: field("client_email"),
    privateKey,
    privateKeyId: typeof keyId === "string" && keyId !== "" ? keyId : undefined,
    tokenUri,
    projectId: field("project_id"),
  };
}

/** Google accepts assertions valid for at most an hour. */
const ASSERTION_LIFETIME_SECONDS = 3600;

/**
 * A token is replaced this long before Google's expiry, so a request never leaves with one that
 * expires on the way (clock skew, a slow push service); google-auth-library's margin too.
 */
const REFRESH_MARGIN_MS = 5 * 60_000;

/**
 * OAuth 2.0 access tokens of a service account (RFC 7523 JWT bearer grant, as Google documents it
 * for server-to-server calls): an RS256 assertion signed with the account's key, exchanged at its
 * `token_uri`, cached until shortly before it expires. Concurrent callers share one exchange.
 *
 * Not google-auth-library's JWT client: it posts to https://oauth2.googleapis.com/token whatever
 * the key file's `token_uri` says (10.x, `gtoken/getToken.js`), so it could not be pointed at
 * another token server (a private endpoint, a test's).
 */
export class ServiceAccountTokens {
  #current: { token: string; refreshAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(
    private readonly account: ServiceAccount,
    private readonly scope: string,
    private readonly timeoutMs: number,
  ) {}

  /** A valid access token: the cached one, or a new one from the token endpoint. */
  get(): Promise<string> {
    const current = this.#current;
    if (current && Date.now() < current.refreshAt) return Promise.resolve(current.token);
    this.#pending ??= this.#exchange().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /** Forgets `token` (a service refused it: revoked, or expired early); the next get() fetches another. */
  invalidate(token: string): void {
    if (this.#current?.token === token) this.#current = undefined;
  }

  async #exchange(): Promise<string> {
    const res = await fetch(this.account.tokenUri, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
        assertion: this.#assertion(),
      }),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    let body: { access_token?: unknown; expires_in?: unknown; error?: unknown; error_description?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`token endpoint answered ${res.status} with no JSON`);
    }
    if (!res.ok || typeof body.access_token !== "string") {
      const detail = [body.error, body.error_description].filter((v) => typeof v === "string").join(": ");
      throw new Error(`token endpoint answered ${res.status}${detail ? ` (${detail})` : ""}`);
    }
    const expiresIn = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 3600;
    this.#current = { token: body.access_token, refreshAt: Date.now() + expiresIn * 1000 - REFRESH_MARGIN_MS };
    return body.access_token;
  }

  #assertion(): string {
    const iat = Math.floor(Date.now() / 1000);
    const header = {
      alg: "RS256",
      typ: "JWT",
      ...(this.account.privateKeyId ? { kid: this.account.privateKeyId } : {}),
    };
    const claims = {
      iss: this.account.clientEmail,
      scope: this.scope,
      aud: this.account.tokenUri,
      iat,
      exp: iat + ASSERTION_LIFETIME_SECONDS,
    };
    const input = `${base64url(header)}.${base64url(claims)}`;
    const signature = sign("sha256", Buffer.from(input), this.account.privateKey).toString("base64url");
    return `${input}.${signature}`;
  }
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AppError, ErrorCode } from "../errors.js";
import type { ApiKeyRecord, ApiKeyStore } from "../storage/ports.js";

/**
 * Server API keys: "sk_<id>_<secret>", both parts random base64url of fixed lengths (so the
 * separator is found by position, although base64url has "_" too). Only the SHA-256 of the
 * secret is stored; a key is found by its id and its secret compared in constant time.
 */
const ID_BYTES = 12;
const SECRET_BYTES = 32;
/** base64url lengths of ID_BYTES and SECRET_BYTES. */
const ID_CHARS = 16;
const SECRET_CHARS = 43;
const KEY_PATTERN = new RegExp(`^sk_([A-Za-z0-9_-]{${ID_CHARS}})_([A-Za-z0-9_-]{${SECRET_CHARS}})$`);

export function secretDigestOf(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** The id and secret of a key as a client sent it, or null when it is not shaped like one. */
export function parseApiKey(key: string): { id: string; secret: string } | null {
  const match = KEY_PATTERN.exec(key);
  return match?.[1] && match[2] ? { id: match[1], secret: match[2] } : null;
}

/** Makes and stores a key; answers it (the only time it is seen) with its record. */
export async function createApiKey(
  store: Pick<ApiKeyStore, "create">,
  name: string,
  now = Date.now(),
): Promise<{ key: string; record: ApiKeyRecord }> {
  const id = randomBytes(ID_BYTES).toString("base64url");
  const secret = randomBytes(SECRET_BYTES).toString("base64url");
  const record: ApiKeyRecord = {
    id,
    name: name.trim(),
    secretDigest: secretDigestOf(secret),
    createdAt: now,
    revokedAt: 0,
  };
  await store.create(record);
  return { key: `sk_${id}_${secret}`, record };
}

/**
 * The key's record if `key` is a valid, unrevoked key; AppError(API_KEY_INVALID) otherwise (the
 * same answer for a malformed, unknown, wrong or revoked key).
 */
export async function checkApiKey(store: Pick<ApiKeyStore, "byId">, key: string | undefined): Promise<ApiKeyRecord> {
  const parsed = key === undefined ? null : parseApiKey(key);
  if (!parsed) throw new AppError(ErrorCode.API_KEY_INVALID, "an API key is required: Authorization: Bearer sk_...");
  const record = await store.byId(parsed.id);
  const expected = Buffer.from(record?.secretDigest ?? "0".repeat(64), "hex");
  const given = Buffer.from(secretDigestOf(parsed.secret), "hex");
  const matches = expected.length === given.length && timingSafeEqual(expected, given);
  if (!record || !matches || record.revokedAt !== 0) {
    throw new AppError(ErrorCode.API_KEY_INVALID, "unknown or revoked API key");
  }
  return record;
}

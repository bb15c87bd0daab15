import { AppError, ErrorCode } from "../../errors.js";
import { type DecimalId, isDecimalId, MAX_UINT64 } from "../../ids/identifiers.js";

/** Already canonical and below 2^64 (19 digits at most, no leading zero): no BigInt needed. */
const CANONICAL_SHORT = /^(0|[1-9]\d{0,18})$/;

/**
 * The canonical decimal form of a uint64 id ("007" → "7"), or null when it is not one.
 * Ids are TEXT in SQLite (uint64 does not fit its INTEGER), so "7" and "007" would be two
 * keys there while MySQL's BIGINT UNSIGNED makes them one: canonical text keeps them one.
 */
export function canonicalId(id: string): DecimalId | null {
  if (typeof id !== "string") return null;
  if (CANONICAL_SHORT.test(id)) return id as DecimalId;
  if (!isDecimalId(id)) return null;
  const value = BigInt(id);
  return value <= MAX_UINT64 ? `${value}` : null;
}

/** canonicalId, or AppError(INVALID_ARGUMENT) naming the value. */
export function requireCanonicalId(id: string): DecimalId {
  const canonical = canonicalId(id);
  if (canonical === null) throw new AppError(ErrorCode.INVALID_ARGUMENT, `"${id}" is not a decimal uint64 id`);
  return canonical;
}

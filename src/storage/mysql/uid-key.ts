import { AppError, ErrorCode } from "../../errors.js";
import { isDecimalId } from "../../ids/identifiers.js";
import type { Uid } from "../ports.js";

/** A decimal uid's canonical text: the placement key of its per-user rows (INVALID_ARGUMENT otherwise). */
export function uidKey(uid: Uid): Uid {
  if (!isDecimalId(uid)) throw new AppError(ErrorCode.INVALID_ARGUMENT, `"${uid}" is not a decimal id`);
  return `${BigInt(uid)}`;
}

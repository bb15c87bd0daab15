import type { DecimalId } from "./identifiers.js";

/** Makes unique ids that sort by time (snowflakes), as decimal strings. */
export interface IdGenerator {
  /** Throws AppError(UNAVAILABLE) when this process may not issue ids (its worker lease is lost). */
  next(): DecimalId;
}

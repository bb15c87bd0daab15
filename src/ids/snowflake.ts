import { AppError, ErrorCode } from "../errors.js";
import type { DecimalId } from "./identifiers.js";
import type { IdGenerator } from "./ports.js";

/** 2025-01-01T00:00:00Z: ids count milliseconds from here, so 41 bits last until 2094. */
export const SNOWFLAKE_EPOCH_MS = Date.UTC(2025, 0, 1);
export const MAX_WORKER_ID = 1023;

const WORKER_BITS = 10n;
const SEQUENCE_BITS = 12n;
const MAX_SEQUENCE = (1 << Number(SEQUENCE_BITS)) - 1;
const MAX_ELAPSED_MS = 2 ** 41 - 1;

export interface SnowflakeOptions {
  workerId: number;
  /** A clock step backwards up to this long is waited out; a longer one fails until it catches up. */
  clockBackwardsToleranceMs?: number;
  now?: () => number;
}

export interface DecodedSnowflake {
  timeMs: number;
  workerId: number;
  sequence: number;
}

/** The parts of a snowflake id. */
export function decodeSnowflake(id: string): DecodedSnowflake {
  const n = BigInt(id);
  return {
    timeMs: Number(n >> (WORKER_BITS + SEQUENCE_BITS)) + SNOWFLAKE_EPOCH_MS,
    workerId: Number((n >> SEQUENCE_BITS) & ((1n << WORKER_BITS) - 1n)),
    sequence: Number(n & BigInt(MAX_SEQUENCE)),
  };
}

function checkWorkerId(workerId: number): void {
  if (!Number.isInteger(workerId) || workerId < 0 || workerId > MAX_WORKER_ID) {
    throw new RangeError(`workerId must be 0..${MAX_WORKER_ID}, got ${workerId}`);
  }
}

/**
 * Time-sorted unique ids: 41 bits of milliseconds since SNOWFLAKE_EPOCH_MS, 10 bits of worker id,
 * 12 bits of sequence. Unique across processes only while each worker id has one holder
 * (see worker-leases.ts).
 */
export class Snowflake implements IdGenerator {
  #workerId: number;
  readonly #toleranceMs: number;
  readonly #now: () => number;
  #lastMs = -1;
  #sequence = 0;
  #disabledReason: string | null = null;

  constructor(options: SnowflakeOptions) {
    checkWorkerId(options.workerId);
    this.#workerId = options.workerId;
    this.#toleranceMs = options.clockBackwardsToleranceMs ?? 5;
    this.#now = options.now ?? Date.now;
  }

  get workerId(): number {
    return this.#workerId;
  }

  /** From now on next() throws UNAVAILABLE (the worker id may now belong to someone else). */
  disable(reason: string): void {
    this.#disabledReason ??= reason;
  }

  /**
   * Issues ids again, under `workerId` (a new lease, maybe on the same id). The clock state is
   * kept, so ids stay increasing and never repeat one this process has issued.
   */
  enable(workerId: number): void {
    checkWorkerId(workerId);
    this.#workerId = workerId;
    this.#disabledReason = null;
  }

  get disabled(): boolean {
    return this.#disabledReason !== null;
  }

  next(): DecimalId {
    if (this.#disabledReason !== null) {
      throw new AppError(ErrorCode.UNAVAILABLE, `id generator disabled: ${this.#disabledReason}`);
    }
    let ms = this.#now();
    if (ms < this.#lastMs) {
      const behind = this.#lastMs - ms;
      if (behind > this.#toleranceMs) {
        throw new AppError(
          ErrorCode.UNAVAILABLE,
          `clock moved backwards by ${behind} ms; ids paused until it catches up`,
        );
      }
      // next() is synchronous, so a short step back can only be waited out by spinning.
      ms = this.#waitUntilAtLeast(this.#lastMs);
    }
    if (ms === this.#lastMs) {
      if (this.#sequence < MAX_SEQUENCE) {
        this.#sequence++;
      } else {
        ms = this.#waitUntilAtLeast(this.#lastMs + 1);
        this.#sequence = 0;
      }
    } else {
      this.#sequence = 0;
    }
    const elapsed = ms - SNOWFLAKE_EPOCH_MS;
    if (elapsed < 0 || elapsed > MAX_ELAPSED_MS) {
      throw new AppError(ErrorCode.UNAVAILABLE, `clock ${ms} is outside the snowflake time range`);
    }
    this.#lastMs = ms;
    const id =
      (BigInt(elapsed) << (WORKER_BITS + SEQUENCE_BITS)) |
      (BigInt(this.#workerId) << SEQUENCE_BITS) |
      BigInt(this.#sequence);
    return `${id}`;
  }

  #waitUntilAtLeast(targetMs: number): number {
    let ms = this.#now();
    while (ms < targetMs) ms = this.#now();
    return ms;
  }
}

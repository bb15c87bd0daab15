import { describe, expect, it } from "vitest";
import { AppError, codeOf, ErrorCode } from "../src/errors.js";
import { decodeSnowflake, SNOWFLAKE_EPOCH_MS, Snowflake } from "../src/ids/snowflake.js";

function codeOfCall(fn: () => unknown): ErrorCode | "none" {
  try {
    fn();
    return "none";
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return codeOf(err);
  }
}

/** A clock the test moves by hand; `advanceOnRead` lets busy-waits make progress. */
function manualClock(startMs: number, advanceOnRead = 0) {
  let ms = startMs;
  return {
    now: () => {
      const t = ms;
      ms += advanceOnRead;
      return t;
    },
    set: (t: number) => {
      ms = t;
    },
    peek: () => ms,
  };
}

describe("Snowflake", () => {
  it("issues 100k strictly increasing ids", () => {
    const ids = new Snowflake({ workerId: 7 });
    let previous = BigInt(ids.next());
    for (let i = 0; i < 100_000; i++) {
      const id = BigInt(ids.next());
      expect(id > previous).toBe(true);
      previous = id;
    }
  });

  it("never collides between two workers", () => {
    // One shared clock, frozen between batches: both workers use the very same milliseconds.
    const clock = manualClock(Date.now());
    const a = new Snowflake({ workerId: 1, now: clock.now });
    const b = new Snowflake({ workerId: 2, now: clock.now });
    const seen = new Set<string>();
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 1000; i++) {
        seen.add(a.next());
        seen.add(b.next());
      }
      clock.set(clock.peek() + 1);
    }
    expect(seen.size).toBe(40_000);
  });

  it("encodes the time, worker and sequence", () => {
    const before = Date.now();
    const id = new Snowflake({ workerId: 1023 }).next();
    const after = Date.now();
    const parts = decodeSnowflake(id);
    expect(parts.timeMs).toBeGreaterThanOrEqual(before);
    expect(parts.timeMs).toBeLessThanOrEqual(after);
    expect(parts.workerId).toBe(1023);
    expect(parts.sequence).toBe(0);
    expect(SNOWFLAKE_EPOCH_MS).toBe(Date.parse("2025-01-01T00:00:00Z"));
    expect(id).toMatch(/^[1-9][0-9]*$/);
  });

  it("waits for the next millisecond when the sequence is used up", () => {
    // The clock reads the same millisecond 5000 times before it moves on.
    let reads = 0;
    const start = Date.now();
    const ids = new Snowflake({ workerId: 3, now: () => start + Math.floor(reads++ / 5000) });
    const parts = Array.from({ length: 4097 }, () => decodeSnowflake(ids.next()));
    expect(parts[4095]).toMatchObject({ timeMs: start, sequence: 4095 });
    expect(parts[4096]).toMatchObject({ timeMs: start + 1, sequence: 0 });
  });

  it("waits out a clock step backwards within the tolerance", () => {
    const start = Date.now();
    // Every read moves this clock on by 1 ms, so a wait has something to wait for.
    const clock = manualClock(start, 1);
    const ids = new Snowflake({ workerId: 4, now: clock.now, clockBackwardsToleranceMs: 5 });
    const before = BigInt(ids.next());
    clock.set(start - 3);
    const after = ids.next();
    expect(BigInt(after) > before).toBe(true);
    expect(decodeSnowflake(after).timeMs).toBeGreaterThanOrEqual(start);
    // It waited: the clock was read until it was back at the last issued millisecond.
    expect(clock.peek()).toBeGreaterThan(start);
  });

  it("throws UNAVAILABLE for a clock step backwards beyond the tolerance, until it catches up", () => {
    const start = Date.now();
    const clock = manualClock(start);
    const ids = new Snowflake({ workerId: 5, now: clock.now, clockBackwardsToleranceMs: 5 });
    const before = BigInt(ids.next());
    clock.set(start - 50);
    expect(codeOfCall(() => ids.next())).toBe(ErrorCode.UNAVAILABLE);
    clock.set(start - 10);
    expect(codeOfCall(() => ids.next())).toBe(ErrorCode.UNAVAILABLE);
    clock.set(start + 1);
    expect(BigInt(ids.next()) > before).toBe(true);
  });

  it("throws UNAVAILABLE once disabled", () => {
    const ids = new Snowflake({ workerId: 6 });
    ids.next();
    ids.disable("lease lost");
    expect(codeOfCall(() => ids.next())).toBe(ErrorCode.UNAVAILABLE);
    expect(() => ids.next()).toThrow(/lease lost/);
  });

  it("issues again under a new worker id once enabled, never repeating the clock it used", () => {
    const clock = manualClock(SNOWFLAKE_EPOCH_MS + 50_000);
    const ids = new Snowflake({ workerId: 6, now: clock.now });
    const last = ids.next();
    ids.disable("lease lost");
    ids.enable(6);
    // The same millisecond, the same worker id (re-leased): the sequence goes on, no repeat.
    const again = ids.next();
    expect(BigInt(again) > BigInt(last)).toBe(true);
    ids.enable(9);
    expect(decodeSnowflake(ids.next()).workerId).toBe(9);
    expect(() => ids.enable(1024)).toThrow(RangeError);
  });

  it("rejects a worker id outside 0..1023", () => {
    expect(() => new Snowflake({ workerId: 1024 })).toThrow(RangeError);
    expect(() => new Snowflake({ workerId: -1 })).toThrow(RangeError);
  });
});

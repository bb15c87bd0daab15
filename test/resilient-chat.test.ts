import { backoffMs } from "@shardchat/sdk";
import { describe, expect, it } from "vitest";

/**
 * The SDK's reconnect pauses: the users of a node that died (or was added) must come back spread
 * out over the window, not all at its start, and the window grows with each failed attempt up to
 * its cap. (The reconnects themselves run in test/stack/scale.test.ts.)
 */
describe("reconnect backoff", () => {
  const sample = (attempt: number, n = 2000) => Array.from({ length: n }, () => backoffMs(attempt, 200, 5000));

  it("spreads the first attempts over the whole base window", () => {
    const pauses = sample(1);
    expect(Math.min(...pauses)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...pauses)).toBeLessThan(200);
    const mean = pauses.reduce((a, b) => a + b, 0) / pauses.length;
    expect(mean).toBeGreaterThan(80);
    expect(mean).toBeLessThan(120);
    // Not one burst: every tenth of the window gets some of them.
    const tenths = new Set(pauses.map((p) => Math.floor(p / 20)));
    expect(tenths.size).toBe(10);
  });

  it("doubles the window with each failed attempt, up to the cap", () => {
    expect(Math.max(...sample(3))).toBeLessThan(800);
    expect(Math.max(...sample(3))).toBeGreaterThan(400);
    expect(Math.max(...sample(30))).toBeLessThan(5000);
    expect(Math.max(...sample(30))).toBeGreaterThan(4000);
  });
});

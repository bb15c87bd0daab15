import { describe, expect, it } from "vitest";
import { fitsChars } from "../src/text/chars.js";

describe("fitsChars (code points, as a user and a VARCHAR count)", () => {
  it("takes a string up to max characters and refuses one over", () => {
    expect(fitsChars("", 0)).toBe(true);
    expect(fitsChars("abcd", 4)).toBe(true);
    expect(fitsChars("abcde", 4)).toBe(false);
  });

  it("counts an emoji (two UTF-16 units) as one character", () => {
    const four = "😀😀😀😀"; // 8 units, 4 code points
    expect(four.length).toBe(8);
    expect(fitsChars(four, 4)).toBe(true);
    expect(fitsChars(`${four}😀`, 4)).toBe(false);
    expect(fitsChars(`${four}a`, 4)).toBe(false);
  });
});

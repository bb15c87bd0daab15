import { describe, expect, it } from "vitest";
import { ErrorCode } from "../src/errors.js";
import { convIdForPair, directConvMembers, requireChars } from "../src/ids/identifiers.js";

describe("identifiers", () => {
  it("reads the members of a 1:1 conversation id back, and nothing else as one", () => {
    expect(directConvMembers(convIdForPair("10", "9"))).toEqual(["9", "10"]);
    expect(directConvMembers("p:18446744073709551615:1")).toEqual(["18446744073709551615", "1"]);
    for (const other of ["g:5", "p:1", "p:1:2:3", "p:a:2", "p:1:2 ", `p:1:${"9".repeat(21)}`, ""]) {
      expect(directConvMembers(other), other).toBeUndefined();
    }
  });

  it("takes a text field of 1..max characters (emoji count once) and refuses anything else by name", () => {
    expect(requireChars("😀😀", 2, "name")).toBe("😀😀");
    for (const bad of ["", "abc", "😀😀😀", 7, undefined, null]) {
      expect(() => requireChars(bad, 2, "name"), String(bad)).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT, message: "name must be 1..2 characters" }),
      );
    }
  });
});

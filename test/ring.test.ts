import { describe, expect, it } from "vitest";
import { ChatRing } from "../src/routing/ring.js";

const VNODES = 160;
const UIDS = Array.from({ length: 30_000 }, (_, i) => String(1_000_000 + i * 7919));

function owners(ring: ChatRing): Map<string, string> {
  const out = new Map<string, string>();
  for (const uid of UIDS) {
    const owner = ring.ownerOf(uid);
    if (!owner) throw new Error(`no owner for ${uid}`);
    out.set(uid, owner);
  }
  return out;
}

function shares(assignment: Map<string, string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const owner of assignment.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  return counts;
}

const nodes = (...ids: string[]) => ids.map((nodeId) => ({ nodeId, weight: 1 }));

describe("ChatRing", () => {
  it("answers nothing when empty", () => {
    const ring = new ChatRing([], VNODES);
    expect(ring.size).toBe(0);
    expect(ring.ownerOf("42")).toBeUndefined();
  });

  it("gives the same owner for the same nodes in any order", () => {
    const a = owners(new ChatRing(nodes("chat-1", "chat-2", "chat-3"), VNODES));
    const b = owners(new ChatRing(nodes("chat-3", "chat-1", "chat-2"), VNODES));
    expect(b).toEqual(a);
    expect(new ChatRing(nodes("chat-1", "chat-2", "chat-3"), VNODES).size).toBe(3);
  });

  it("splits users evenly over equal nodes (within ±15 %)", () => {
    const counts = shares(owners(new ChatRing(nodes("chat-1", "chat-2", "chat-3"), VNODES)));
    expect([...counts.keys()].sort()).toEqual(["chat-1", "chat-2", "chat-3"]);
    for (const count of counts.values()) {
      expect(count).toBeGreaterThan(10_000 * 0.85);
      expect(count).toBeLessThan(10_000 * 1.15);
    }
  });

  it("moves only keys that now belong to an added node, about a quarter of them", () => {
    const before = owners(new ChatRing(nodes("chat-1", "chat-2", "chat-3"), VNODES));
    const after = owners(new ChatRing(nodes("chat-1", "chat-2", "chat-3", "chat-4"), VNODES));
    let moved = 0;
    for (const [uid, owner] of after) {
      if (owner !== before.get(uid)) {
        expect(owner).toBe("chat-4");
        moved++;
      }
    }
    expect(moved).toBeGreaterThan(UIDS.length * 0.25 * 0.85);
    expect(moved).toBeLessThan(UIDS.length * 0.25 * 1.15);
  });

  it("moves only the keys of a removed node", () => {
    const before = owners(new ChatRing(nodes("chat-1", "chat-2", "chat-3", "chat-4"), VNODES));
    const after = owners(new ChatRing(nodes("chat-1", "chat-2", "chat-4"), VNODES));
    let moved = 0;
    for (const [uid, owner] of before) {
      if (owner === "chat-3") {
        expect(after.get(uid)).not.toBe("chat-3");
        moved++;
      } else {
        expect(after.get(uid)).toBe(owner);
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it("gives a weight-2 node about twice the share of a weight-1 node", () => {
    const ring = new ChatRing(
      [
        { nodeId: "chat-1", weight: 1 },
        { nodeId: "chat-2", weight: 2 },
        { nodeId: "chat-3", weight: 1 },
      ],
      VNODES,
    );
    const counts = shares(owners(ring));
    const heavy = counts.get("chat-2") ?? 0;
    // Expected: half of all keys to chat-2, a quarter to each other node.
    expect(heavy).toBeGreaterThan(UIDS.length * 0.5 * 0.85);
    expect(heavy).toBeLessThan(UIDS.length * 0.5 * 1.15);
    for (const light of ["chat-1", "chat-3"]) {
      const ratio = heavy / (counts.get(light) ?? 1);
      expect(ratio).toBeGreaterThan(2 * 0.75);
      expect(ratio).toBeLessThan(2 * 1.25);
    }
  });

  it("keeps the old nodes' keys in place when a heavier node joins", () => {
    const before = owners(new ChatRing(nodes("chat-1", "chat-2"), VNODES));
    const after = owners(new ChatRing([...nodes("chat-1", "chat-2"), { nodeId: "chat-3", weight: 3 }], VNODES));
    for (const [uid, owner] of after) {
      if (owner !== before.get(uid)) expect(owner).toBe("chat-3");
    }
  });

  it("rejects a bad weight", () => {
    expect(() => new ChatRing([{ nodeId: "chat-1", weight: 0 }], VNODES)).toThrow(RangeError);
  });
});

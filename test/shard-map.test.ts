import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  decodeShardMap,
  encodeShardMap,
  evenShardMap,
  instanceOf,
  moveSlots,
  slotCounts,
  slotOf,
  withCredentialsOf,
} from "../src/storage/sharded/shard-map.js";
import { ROOT } from "./helpers/processes.js";

const instances = [
  { id: "s0", url: "mysql://root@127.0.0.1:3306/x" },
  { id: "s1", url: "mysql://root@127.0.0.1:3307/x" },
  { id: "s2", url: "mysql://root@127.0.0.1:3308/x" },
];

describe("slotOf", () => {
  it("places a key the same way on every call", () => {
    for (const key of ["p:1:2", "12345678901234567890", "", "名前"]) {
      expect(slotOf(key, 1024)).toBe(slotOf(key, 1024));
      expect(slotOf(key, 1024)).toBeGreaterThanOrEqual(0);
      expect(slotOf(key, 1024)).toBeLessThan(1024);
    }
  });

  it("places a key the same way in another process (CRC-32, known values)", async () => {
    const keys = ["p:1:2", "p:900719925474099000:900719925474099001", "name:alice"];
    const script = `import { slotOf } from "./src/storage/sharded/shard-map.ts";
console.log(JSON.stringify(${JSON.stringify(keys)}.map((k) => slotOf(k, 1024))));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        cwd: ROOT,
      },
    );
    expect(JSON.parse(stdout)).toEqual(keys.map((k) => slotOf(k, 1024)));
    // CRC-32 of "123456789" is the standard check value 0xCBF43926.
    expect(slotOf("123456789", 2 ** 16)).toBe(0xcbf43926 % 2 ** 16);
  });
});

describe("ShardMap", () => {
  it("spreads 10k conversation ids over 3 instances within ±5% of an even share", () => {
    const map = evenShardMap(instances, 1024);
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const a = 900719925474099000n + BigInt(i * 7);
      const convId = `p:${a}:${a + BigInt(1 + (i % 97))}`;
      const id = instanceOf(map, convId).id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    console.log("10k conversations per instance:", Object.fromEntries(counts));
    for (const instance of instances) {
      expect(counts.get(instance.id) ?? 0).toBeGreaterThan((10_000 / 3) * 0.95);
      expect(counts.get(instance.id) ?? 0).toBeLessThan((10_000 / 3) * 1.05);
    }
  });

  it("starts with equal contiguous ranges, version 1", () => {
    const map = evenShardMap(instances, 1024);
    expect(map.version).toBe(1);
    expect([...slotCounts(map).values()]).toEqual([342, 341, 341]);
    expect(map.owner[0]).toBe(0);
    expect(map.owner[1023]).toBe(2);
    for (let s = 1; s < 1024; s++) expect(map.owner[s]).toBeGreaterThanOrEqual(map.owner[s - 1] as number);
  });

  it("moves only the named slots, to a new instance, and bumps the version", () => {
    const map = evenShardMap(instances, 1024);
    const s3 = { id: "s3", url: "mysql://root@10.0.0.4:3306/x" };
    const moved = moveSlots(map, [0, 1, 500, 1023], s3);
    expect(moved.version).toBe(2);
    expect(moved.instances.map((i) => i.id)).toEqual(["s0", "s1", "s2", "s3"]);
    for (let s = 0; s < 1024; s++) {
      if ([0, 1, 500, 1023].includes(s)) expect(moved.instances[moved.owner[s] as number]?.id).toBe("s3");
      else expect(moved.owner[s]).toBe(map.owner[s]);
    }
    expect(map.version).toBe(1); // the old map is untouched
    expect(() => moveSlots(map, [1024], s3)).toThrow(RangeError);
  });

  it("round-trips through its stored form and refuses a broken one", () => {
    const map = moveSlots(evenShardMap(instances, 64), [3], instances[2] as (typeof instances)[number]);
    // Stored without credentials: each process reaches an instance with its own user.
    const withSecrets = {
      ...map,
      instances: map.instances.map((i) => ({ ...i, url: i.url.replace("root@", "root:s3cret@") })),
    };
    const stored = encodeShardMap(withSecrets);
    expect(stored).not.toMatch(/root|s3cret/);
    expect(decodeShardMap(map.version, stored)).toEqual({
      ...map,
      instances: map.instances.map((i) => ({ ...i, url: i.url.replace("root@", "") })),
    });
    expect(withCredentialsOf("mysql://10.0.0.9:3306/x", "mysql://chat:pw@10.0.0.1:3306/x")).toBe(
      "mysql://chat:pw@10.0.0.9:3306/x",
    );
    expect(withCredentialsOf("mysql://own@10.0.0.9:3306/x", "mysql://chat:pw@10.0.0.1:3306/x")).toBe(
      "mysql://own@10.0.0.9:3306/x",
    );
    expect(() => decodeShardMap(1, JSON.stringify({ slots: 4, instances, owner: [0, 1, 2, 7] }))).toThrow(
      /does not exist/,
    );
    expect(() => decodeShardMap(1, JSON.stringify({ slots: 4, instances, owner: [0, 1] }))).toThrow(/entries/);
  });
});

import { describe, expect, it } from "vitest";
import { KnownUsers } from "../src/chat/known-users.js";
import type { Uid } from "../src/ids/identifiers.js";
import type { UserRecord } from "../src/storage/ports.js";
import { SqliteUserStore } from "../src/storage/sqlite/user-store.js";
import { tempSqlite } from "./helpers/sqlite.js";

function user(uid: Uid, name: string): UserRecord {
  return { uid, name, email: `${name}@example.com`, passwordHash: `hash-of-${name}`, createdAt: 1_700_000_000_000 };
}

describe("KnownUsers (the chat node's memory of existing uids)", () => {
  it("answers from memory once a uid was found, and reads again what was missing", async () => {
    const sqlite = tempSqlite("sc-known-users-");
    const store = new SqliteUserStore(sqlite.db);
    let reads = 0;
    const counting = {
      existing: (uids: Uid[]) => {
        reads++;
        return store.existing(uids);
      },
    };
    const known = new KnownUsers(counting, 10);
    await store.create(user("1", "ann"));
    expect([...(await known.existing(["1", "2"]))]).toEqual(["1"]);
    expect(reads).toBe(1);
    expect([...(await known.existing(["1"]))]).toEqual(["1"]);
    expect(reads).toBe(1);
    // Registered after the first read: found on the next one, not remembered as missing.
    await store.create(user("2", "bob"));
    expect([...(await known.existing(["1", "2"]))].sort()).toEqual(["1", "2"]);
    expect(reads).toBe(2);
    sqlite.remove();
  });

  it("forgets everything at its bound and still answers right", async () => {
    const s2 = tempSqlite("sc-known-users-bound-");
    const store = new SqliteUserStore(s2.db);
    for (const [uid, name] of [
      ["1", "a1"],
      ["2", "a2"],
      ["3", "a3"],
    ] as const)
      await store.create(user(uid, name));
    const known = new KnownUsers(store, 2);
    expect((await known.existing(["1", "2", "3"])).size).toBe(3);
    expect([...(await known.existing(["3", "4"]))]).toEqual(["3"]);
    s2.remove();
  });

  it("forgets a deleted uid when told, and everything once its age bound passed", async () => {
    const sqlite = tempSqlite("sc-known-users-age-");
    const store = new SqliteUserStore(sqlite.db);
    let now = 0;
    const known = new KnownUsers(store, 10, 1000, () => now);
    await store.create(user("1", "ann"));
    await store.create(user("2", "bob"));
    expect((await known.existing(["1", "2"])).size).toBe(2);
    // Deleted: remembered until forgotten.
    await store.delete("1");
    await store.delete("2");
    expect((await known.existing(["1", "2"])).size).toBe(2);
    known.forget("1");
    expect([...(await known.existing(["1", "2"]))]).toEqual(["2"]);
    // Past the age bound: read again, so the other node's deletion shows here too.
    now = 1000;
    expect((await known.existing(["1", "2"])).size).toBe(0);
    sqlite.remove();
  });
});

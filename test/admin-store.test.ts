import { describe, expect, it } from "vitest";
import { ErrorCode } from "../src/errors.js";
import { uidOf } from "../src/ids/identifiers.js";
import type { ApiKeyRecord } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";
import { codeOf } from "./helpers/waits.js";

/**
 * The Server API's storage (issue 18), one contract on every backend: API keys (global rows,
 * listed from every shard), bans by uid, a user's rename (sharded: its name index row moves),
 * and the rows of users and messages per instance.
 */
describe.each(contractBackends({ tag: "sc-admin-store-" }))("Server API storage on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_900_000_000_000_000_000n;
  const id = () => uidOf(next++);

  const key = (n: number, over: Partial<ApiKeyRecord> = {}): ApiKeyRecord => ({
    id: `key${n}_${"x".repeat(10)}`.slice(0, 16),
    name: `key ${n}`,
    secretDigest: String(n % 10).repeat(64),
    createdAt: 1_700_000_000_000 + n,
    revokedAt: 0,
    ...over,
  });

  it("keeps API keys: by id, listed oldest first from every instance, revoked once", async () => {
    const keys = [key(1), key(2), key(3)];
    for (const k of [...keys].reverse()) await s.apiKeys.create(k);
    expect(await s.apiKeys.byId(keys[1]?.id ?? "")).toEqual(keys[1]);
    expect(await s.apiKeys.byId("unknown_key_0000")).toBeNull();
    expect(await s.apiKeys.byId("not a key id!")).toBeNull();
    expect((await s.apiKeys.list()).map((k) => k.id)).toEqual(keys.map((k) => k.id));

    expect(await s.apiKeys.revoke(keys[0]?.id ?? "", 1_800_000_000_000)).toBe(true);
    expect(await s.apiKeys.revoke(keys[0]?.id ?? "", 1_800_000_000_001)).toBe(false);
    expect(await s.apiKeys.revoke("unknown_key_0000", 1)).toBe(false);
    expect((await s.apiKeys.byId(keys[0]?.id ?? ""))?.revokedAt).toBe(1_800_000_000_000);

    expect(await codeOf(s.apiKeys.create(key(4, { id: "bad id" })))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.apiKeys.create(key(5, { name: "" })))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.apiKeys.create(key(6, { secretDigest: "the key itself" })))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("keeps one ban per user: replaced when banned again, gone when lifted", async () => {
    const uid = id();
    expect(await s.bans.byUid(uid)).toBeNull();
    await s.bans.ban({ uid, untilMs: 0, reason: "spam", createdAt: 1 });
    await s.bans.ban({ uid, untilMs: 1_900_000_000_000, reason: "spam again", createdAt: 2 });
    expect(await s.bans.byUid(uid)).toEqual({ uid, untilMs: 1_900_000_000_000, reason: "spam again", createdAt: 2 });
    expect(await s.bans.unban(uid)).toBe(true);
    expect(await s.bans.unban(uid)).toBe(false);
    expect(await s.bans.byUid(uid)).toBeNull();
    expect(await codeOf(s.bans.ban({ uid, untilMs: -1, reason: "", createdAt: 1 }))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.bans.ban({ uid, untilMs: 0, reason: "x".repeat(501), createdAt: 1 }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
  });

  it("renames a user: the new name finds it, the old one is free, a taken one is refused", async () => {
    const [a, b] = [id(), id()];
    const tag = a.slice(-6);
    await s.users.create({ uid: a, name: `ren_a_${tag}`, email: `a_${tag}@x.test`, passwordHash: "!", createdAt: 1 });
    await s.users.create({ uid: b, name: `ren_b_${tag}`, email: `b_${tag}@x.test`, passwordHash: "!", createdAt: 1 });
    expect(await s.users.rename(a, `ren_c_${tag}`)).toBe(true);
    expect((await s.users.byName(`ren_c_${tag}`))?.uid).toBe(a);
    expect(await s.users.byName(`ren_a_${tag}`)).toBeNull();
    expect(await codeOf(s.users.rename(b, `ren_c_${tag}`))).toBe(ErrorCode.USER_EXISTS);
    expect((await s.users.byUid(b))?.name).toBe(`ren_b_${tag}`);
    // The old name may be taken by someone else now.
    await s.users.create({
      uid: id(),
      name: `ren_a_${tag}`,
      email: `d_${tag}@x.test`,
      passwordHash: "!",
      createdAt: 1,
    });
    expect(await s.users.rename(id(), "nobody_at_all")).toBe(false);
  });

  it("counts users and messages per instance", async () => {
    const before = await s.storageStats.sizes();
    const uid = id();
    await s.users.create({
      uid,
      name: `size_${uid.slice(-6)}`,
      email: `size_${uid}@x.test`,
      passwordHash: "!",
      createdAt: 1,
    });
    const after = await s.storageStats.sizes();
    expect(after.map((x) => x.instance)).toEqual(before.map((x) => x.instance));
    const sum = (sizes: typeof after) => sizes.reduce((n, x) => n + x.users, 0);
    expect(sum(after) - sum(before)).toBe(1);
    expect(after.every((x) => Number.isInteger(x.messages) && x.messages >= 0)).toBe(true);
  });
});

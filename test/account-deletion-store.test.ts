import { describe, expect, it } from "vitest";
import { ErrorCode } from "../src/errors.js";
import { uidOf } from "../src/ids/identifiers.js";
import type { AccountDeletionRecord, AccountDeletionStore, Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";
import { codeOf } from "./helpers/waits.js";

/**
 * Account deletion requests (issue 17) through the store API, the same contract on every
 * backend: gate's upsert, the worker's pages per instance and its done, which leaves a request
 * made again since. Sharded, a row lives on its uid's shard and each instance answers only its own.
 */
const backends = contractBackends({ tag: "sc-deletions-" });

describe.each(backends)("account deletion requests on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_500_000_000_000_000_000n;
  const id = () => uidOf(next++);

  /** Every pending request of every instance, page by page (`page` rows a read). */
  async function all(page = 100): Promise<AccountDeletionRecord[]> {
    const found: AccountDeletionRecord[] = [];
    for (const instance of s.accountDeletions.instances()) {
      for (let after: Uid | null = "0"; after !== null; ) {
        const read: Awaited<ReturnType<AccountDeletionStore["pending"]>> = await s.accountDeletions.pending(
          instance,
          after,
          page,
        );
        found.push(...read.deletions);
        after = read.next;
      }
    }
    return found.sort((a, b) => (BigInt(a.uid) < BigInt(b.uid) ? -1 : 1));
  }

  it("records a request once, takes the later time when asked again, and keeps erase once asked", async () => {
    const uid = id();
    await s.accountDeletions.request(uid, 10, true);
    await s.accountDeletions.request(uid, 20, false);
    expect((await all()).filter((d) => d.uid === uid)).toEqual([{ uid, requestedAt: 20, eraseMessages: true }]);
    const kept = id();
    await s.accountDeletions.request(kept, 30, false);
    expect((await all()).find((d) => d.uid === kept)).toEqual({ uid: kept, requestedAt: 30, eraseMessages: false });
    expect(await codeOf(s.accountDeletions.request("not-a-uid" as Uid, 1, false))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("deletes a request when done, unless it was requested again since", async () => {
    const uid = id();
    await s.accountDeletions.request(uid, 100, false);
    const [read] = (await all()).filter((d) => d.uid === uid);
    // Asked again while the worker ran: the worker's done leaves the new request.
    await s.accountDeletions.request(uid, 200, false);
    expect(await s.accountDeletions.done(uid, read?.requestedAt ?? 0)).toBe(false);
    expect((await all()).find((d) => d.uid === uid)?.requestedAt).toBe(200);
    expect(await s.accountDeletions.done(uid, 200)).toBe(true);
    expect((await all()).find((d) => d.uid === uid)).toBeUndefined();
    expect(await s.accountDeletions.done(uid, 200)).toBe(false);
    expect(await s.accountDeletions.done("nope" as Uid, 200)).toBe(false);
  });

  it("pages through every instance's requests in uid order, each exactly once", async () => {
    const before = (await all()).map((d) => d.uid);
    // Uids of different lengths: numeric order, not text order (SQLite keeps them as TEXT).
    const uids = [id(), id(), id(), id(), id(), "9" as Uid, "12" as Uid, "1000" as Uid];
    for (const [i, uid] of uids.entries()) await s.accountDeletions.request(uid, 1000 + i, i % 2 === 0);
    const paged = (await all(2)).map((d) => d.uid);
    expect(paged.filter((uid) => !before.includes(uid)).sort()).toEqual([...uids].sort());
    expect(new Set(paged).size).toBe(paged.length);
    for (const instance of s.accountDeletions.instances()) {
      const page = await s.accountDeletions.pending(instance, "0", 1000);
      const order = page.deletions.map((d) => BigInt(d.uid));
      expect(order).toEqual([...order].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      expect(page.next).toBeNull();
    }
    for (const uid of uids) await s.accountDeletions.done(uid, 1000 + uids.indexOf(uid));
    expect((await all()).map((d) => d.uid)).toEqual(before);
  });

  it("keeps a request on its uid's shard, read by that instance's pass only (sharded)", async (ctx) => {
    if (!s.ownerOf || !s.holders) return ctx.skip();
    const uids = Array.from({ length: 12 }, () => id());
    for (const uid of uids) await s.accountDeletions.request(uid, 5, false);
    for (const uid of uids) {
      const owner = s.ownerOf(uid);
      expect(await s.holders("SELECT uid FROM account_deletions WHERE uid = ?", [uid])).toEqual([owner]);
      const page = await s.accountDeletions.pending(owner, "0", 1000);
      expect(page.deletions.map((d) => d.uid)).toContain(uid);
      for (const other of s.accountDeletions.instances().filter((i) => i !== owner)) {
        expect((await s.accountDeletions.pending(other, "0", 1000)).deletions.map((d) => d.uid)).not.toContain(uid);
      }
    }
    // More than one instance holds some: the worker has something to do on each.
    expect(new Set(uids.map((uid) => s.ownerOf?.(uid))).size).toBeGreaterThan(1);
    for (const uid of uids) expect(await s.accountDeletions.done(uid, 5)).toBe(true);
  });
});

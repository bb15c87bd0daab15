import { describe, expect, it } from "vitest";
import { AppError, ErrorCode } from "../src/errors.js";
import { uidOf } from "../src/ids/identifiers.js";
import type { BotRecord, Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";

/**
 * Bots (issue 18) through the store API, the same contract on SQLite, one MySQL and sharded
 * MySQL: create once (again: USER_EXISTS), read, change the webhook URL, remove, list every bot
 * by uid; bad input refused with INVALID_ARGUMENT. Sharded, a bot's row is on its uid's shard
 * alone, and the list reads every shard.
 */
describe.each(contractBackends({ tag: "sc-bots-" }))("bots on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_600_000_000_000_000_000n;
  const id = () => uidOf(next++);
  const AT = 1_700_000_000_000;
  const bot = (uid: Uid, url = `https://bots.example.test/${uid}`): BotRecord => ({
    uid,
    webhookUrl: url,
    createdAt: AT,
    updatedAt: AT,
  });

  async function codeOf(p: Promise<unknown>): Promise<ErrorCode | "resolved"> {
    try {
      await p;
      return "resolved";
    } catch (err) {
      if (err instanceof AppError) return err.code;
      throw err;
    }
  }

  it("creates a bot once, reads it back, and refuses it again with USER_EXISTS", async () => {
    const uid = id();
    expect(await s.bots.byUid(uid)).toBeNull();
    await s.bots.create(bot(uid));
    expect(await s.bots.byUid(uid)).toEqual(bot(uid));
    expect(await codeOf(s.bots.create(bot(uid, "https://other.example.test/")))).toBe(ErrorCode.USER_EXISTS);
    expect((await s.bots.byUid(uid))?.webhookUrl).toBe(`https://bots.example.test/${uid}`);
  });

  it("changes the webhook URL (the same URL again too), and not of a user who is no bot", async () => {
    const uid = id();
    await s.bots.create(bot(uid));
    expect(await s.bots.setWebhook(uid, "http://127.0.0.1:9/new", AT + 5)).toBe(true);
    expect(await s.bots.byUid(uid)).toEqual({ ...bot(uid, "http://127.0.0.1:9/new"), updatedAt: AT + 5 });
    expect(await s.bots.setWebhook(uid, "http://127.0.0.1:9/new", AT + 6)).toBe(true);
    expect(await s.bots.setWebhook(id(), "http://127.0.0.1:9/x", AT)).toBe(false);
    expect(await s.bots.setWebhook("nope" as Uid, "http://127.0.0.1:9/x", AT)).toBe(false);
  });

  it("removes a bot, idempotently", async () => {
    const uid = id();
    await s.bots.create(bot(uid));
    expect(await s.bots.remove(uid)).toBe(true);
    expect(await s.bots.byUid(uid)).toBeNull();
    expect(await s.bots.remove(uid)).toBe(false);
    expect(await s.bots.remove("nope" as Uid)).toBe(false);
    // Made again after a removal: a new row.
    await s.bots.create(bot(uid, "https://again.example.test/"));
    expect((await s.bots.byUid(uid))?.webhookUrl).toBe("https://again.example.test/");
  });

  it("lists every bot by uid, across every instance", async () => {
    const uids = [id(), id(), id(), id(), id(), id()];
    // Created out of order: the list is by uid.
    for (const uid of [...uids].reverse()) await s.bots.create(bot(uid));
    await s.bots.remove(uids[2] as Uid);
    const listed = (await s.bots.list()).filter((b) => uids.includes(b.uid));
    expect(listed).toEqual(uids.filter((_, i) => i !== 2).map((uid) => bot(uid)));
    if (s.ownerOf && s.holders) {
      // Each row only on its uid's shard; six uids in a row spread over more than one.
      const owners = new Set<string>();
      for (const uid of uids.filter((_, i) => i !== 2)) {
        expect(await s.holders("SELECT uid FROM bots WHERE uid = ?", [uid])).toEqual([s.ownerOf(uid)]);
        owners.add(s.ownerOf(uid));
      }
      expect(owners.size).toBeGreaterThan(1);
    }
  });

  it("refuses what its columns cannot hold with INVALID_ARGUMENT", async () => {
    expect(await codeOf(s.bots.create(bot("12x" as Uid)))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.bots.create(bot(id(), "")))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.bots.create(bot(id(), `https://x.test/${"a".repeat(2048)}`)))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    const uid = id();
    await s.bots.create(bot(uid));
    expect(await codeOf(s.bots.setWebhook(uid, `https://x.test/${"a".repeat(2048)}`, AT))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(await s.bots.byUid("nope" as Uid)).toBeNull();
  });
});

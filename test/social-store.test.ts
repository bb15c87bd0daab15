import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStorageAdapters, type StorageAdapters } from "../src/compose.js";
import type { Config } from "../src/config/settings.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, uidOf } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import type { NewMessage, Uid } from "../src/storage/ports.js";
import { dropTestDatabase, testConfig } from "./helpers/env.js";
import { textMessage } from "./helpers/messages.js";

/**
 * The friend, search, conversation-list and read-cursor behaviour of every storage backend,
 * built through the composition root as the services build it: one MySQL instance, three
 * MySQL shards and the embedded SQLite file.
 */
interface Backend {
  name: string;
  open(): Promise<{ adapters: StorageAdapters; cleanup(): Promise<void> }>;
}

const log = createLogger("test", "silent");

const backends: Backend[] = [
  {
    name: "mysql",
    async open() {
      const config = testConfig();
      const adapters = await createStorageAdapters(config, log);
      return { adapters, cleanup: () => dropTestDatabase(config) };
    },
  },
  {
    // Three shard databases on the machine's MariaDB: the sharded adapter with three pools and
    // a shard map, as on three instances (test/sharded-store.test.ts covers real instances).
    name: "sharded mysql (3 shards)",
    async open() {
      const base = testConfig();
      const urls = [0, 1, 2].map((i) => `${base.MYSQL_URL}_s${i}`);
      const config: Config = { ...base, MYSQL_URL: urls[0] as string, MYSQL_SHARDS: urls.join(","), SHARD_SLOTS: 64 };
      const adapters = await createStorageAdapters(config, log);
      return {
        adapters,
        async cleanup() {
          for (const url of urls) await dropTestDatabase({ ...config, MYSQL_URL: url });
        },
      };
    },
  },
  {
    name: "sqlite",
    async open() {
      const dir = mkdtempSync(join(tmpdir(), "sc-social-"));
      const config = { ...testConfig(), STORAGE_BACKEND: "sqlite" as const, DATA_DIR: dir };
      const adapters = await createStorageAdapters(config, log);
      return { adapters, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
];

async function rejection(promise: Promise<unknown>): Promise<ErrorCode | string> {
  try {
    await promise;
    return "resolved";
  } catch (err) {
    return err instanceof AppError ? err.code : `not an AppError: ${String(err)}`;
  }
}

describe.each(backends)("social storage on $name", (backend) => {
  let store: StorageAdapters;
  let cleanup: () => Promise<void>;
  let nextId = 7_100_000_000_000_000_000n;
  const newId = () => uidOf(nextId++);
  let clock = 1_700_000_000_000;

  async function user(name: string): Promise<Uid> {
    const uid = newId();
    await store.users.create({
      uid,
      name,
      email: `${name.toLowerCase()}@example.com`,
      passwordHash: "x",
      createdAt: clock,
    });
    return uid;
  }

  function text(sender: Uid, recipient: Uid, body: string): NewMessage {
    return textMessage(sender, recipient, body, { msgId: newId(), clientMsgId: `c-${newId()}`, sentAtMs: clock++ });
  }

  beforeAll(async () => {
    const opened = await backend.open();
    store = opened.adapters;
    cleanup = opened.cleanup;
  }, 300_000);

  afterAll(async () => {
    await store?.close();
    await cleanup?.();
  });

  it("finds users by name prefix, case-insensitively, with LIKE wildcards taken literally", async () => {
    const alice = await user("Alice");
    const alicia = await user("alicia");
    await user("Bob");
    await user("al_x");
    const found = await store.users.searchByNamePrefix("ALI", 10);
    expect(found.map((u) => u.uid)).toEqual([alice, alicia]);
    expect((await store.users.searchByNamePrefix("ali", 1)).map((u) => u.uid)).toEqual([alice]);
    // "_" and "%" are not wildcards: "al_" matches only "al_x", "%" nothing.
    expect((await store.users.searchByNamePrefix("al_", 10)).map((u) => u.name)).toEqual(["al_x"]);
    expect(await store.users.searchByNamePrefix("%", 10)).toEqual([]);
    expect(await store.users.searchByNamePrefix("", 10)).toEqual([]);
  });

  it("keeps friend applications on the recipient's side, newest first, re-applying replaces the message", async () => {
    const [a, b, c] = [await user("fa"), await user("fb"), await user("fc")];
    await store.friends.apply({ fromUid: a, toUid: c, message: "hi from a", createdAtMs: 1000 });
    await store.friends.apply({ fromUid: b, toUid: c, message: "hi from b", createdAtMs: 2000 });
    expect((await store.friends.incoming(c, 10)).map((x) => x.fromUid)).toEqual([b, a]);
    await store.friends.apply({ fromUid: a, toUid: c, message: "again", createdAtMs: 3000 });
    const incoming = await store.friends.incoming(c, 10);
    expect(incoming.map((x) => [x.fromUid, x.message])).toEqual([
      [a, "again"],
      [b, "hi from b"],
    ]);
    expect(await store.friends.incoming(c, 1)).toHaveLength(1);
    expect(await store.friends.incoming(a, 10)).toEqual([]);
    expect((await store.friends.application(b, c))?.message).toBe("hi from b");
    expect(await store.friends.application(c, b)).toBeNull();
    expect(await store.friends.dropApplication(b, c)).toBe(true);
    expect(await store.friends.dropApplication(b, c)).toBe(false);
    expect((await store.friends.incoming(c, 10)).map((x) => x.fromUid)).toEqual([a]);
    expect(
      await rejection(store.friends.apply({ fromUid: a, toUid: b, message: "x".repeat(501), createdAtMs: 1 })),
    ).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("makes a friendship two rows, idempotently, and removes both", async () => {
    const [a, b, c] = [await user("ga"), await user("gb"), await user("gc")];
    await store.friends.befriend(a, b, 5000);
    await store.friends.befriend(a, b, 6000);
    await store.friends.befriend(c, a, 7000);
    expect(await store.friends.areFriends(a, b)).toBe(true);
    expect(await store.friends.areFriends(b, a)).toBe(true);
    expect(await store.friends.areFriends(b, c)).toBe(false);
    expect(await store.friends.friends(a, 10)).toEqual([
      { uid: b, sinceMs: 5000 },
      { uid: c, sinceMs: 7000 },
    ]);
    expect(await store.friends.friendCount(a)).toBe(2);
    expect(await store.friends.unfriend(b, a)).toBe(true);
    expect(await store.friends.unfriend(b, a)).toBe(false);
    expect(await store.friends.areFriends(a, b)).toBe(false);
    expect(await store.friends.areFriends(b, a)).toBe(false);
    expect((await store.friends.friends(a, 10)).map((f) => f.uid)).toEqual([c]);
    expect(await store.friends.friendCount(b)).toBe(0);
  });

  it("lists a user's conversations newest first with the last message and unread counts", async () => {
    const [me, p, q] = [await user("ca"), await user("cb"), await user("cc")];
    await store.messages.append(text(p, me, "p1"));
    await store.messages.append(text(p, me, "p2"));
    await store.messages.append(text(me, q, "q1"));
    await store.messages.append(text(q, me, "q2"));
    await store.messages.append(text(p, me, "p3"));
    const list = await store.conversations.list(me, 10);
    expect(list.map((c) => [c.convId, c.lastSeq, c.lastSeq - c.readSeq, c.lastMessage?.text])).toEqual([
      [convIdForPair(me, p), 3, 3, "p3"],
      [convIdForPair(me, q), 2, 1, "q2"],
    ]);
    expect(await store.conversations.list(me, 1)).toHaveLength(1);
    expect((await store.conversations.list(q, 10)).map((c) => [c.convId, c.readSeq])).toEqual([
      [convIdForPair(me, q), 2],
    ]);
    expect(await store.conversations.list(newId(), 10)).toEqual([]);
  });

  it("moves read cursors forward only, never past the newest message, and shows the peer's", async () => {
    const [me, p, outsider] = [await user("ra"), await user("rb"), await user("rc")];
    const convId = convIdForPair(me, p);
    for (const body of ["1", "2", "3"]) await store.messages.append(text(p, me, body));
    expect(await store.conversations.markRead(me, convId, 2)).toEqual({ readSeq: 2, advanced: true });
    expect(await store.conversations.markRead(me, convId, 1)).toEqual({ readSeq: 2, advanced: false });
    expect(await store.conversations.markRead(me, convId, 99)).toEqual({ readSeq: 3, advanced: true });
    const [mine] = await store.conversations.list(me, 10);
    expect([mine?.readSeq, mine?.lastSeq]).toEqual([3, 3]);
    const [theirs] = await store.conversations.list(p, 10);
    expect(theirs?.peerReadSeq).toBe(3);
    expect(await rejection(store.conversations.markRead(outsider, convId, 1))).toBe(ErrorCode.NOT_PARTICIPANT);
    expect(await rejection(store.conversations.markRead(me, "p:1:2", 1))).toBe(ErrorCode.NOT_PARTICIPANT);
  });
});

import { once } from "node:events";
import { type ChatClient, GateClient, type LoginAnswer, openChat } from "@shardchat/sdk";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupRole, type KickPush } from "../packages/protocol/src/wire.js";
import { AccountDeletionWorker } from "../src/account/account-deletion-worker.js";
import { DeletedAccountCleanup, successorOf } from "../src/account/clean-up-deleted-account.js";
import { AccountDeletionRequest } from "../src/account/request-deletion.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { convIdForPair, groupConvId, type Uid } from "../src/ids/identifiers.js";
import { createLogger } from "../src/log/logger.js";
import { MemoryJobLocks } from "../src/routing/memory/job-locks.js";
import type { JobLocks } from "../src/routing/ports.js";
import { SqliteAccountDeletionStore } from "../src/storage/sqlite/account-deletion-store.js";
import { SqliteBlockStore } from "../src/storage/sqlite/block-store.js";
import { SqliteFriendStore } from "../src/storage/sqlite/friend-store.js";
import { SqliteGroupStore } from "../src/storage/sqlite/group-store.js";
import { SqliteSentMessageEraser } from "../src/storage/sqlite/retention-store.js";
import { SqliteUserStore } from "../src/storage/sqlite/user-store.js";
import { configEnv } from "./helpers/env.js";
import { freePort } from "./helpers/ports.js";
import { type ServiceProcess, spawnService, waitFor } from "./helpers/processes.js";
import { type Services, startServices } from "./helpers/services.js";
import { tempSqlite } from "./helpers/sqlite.js";
import { codeOf } from "./helpers/waits.js";

/**
 * Account deletion through gate (DELETE /v1/account), every service its own process over
 * MariaDB and Redis: gate ends the sessions and deletes the profile at once, the chat nodes'
 * worker carries out the rest (polled for here, ACCOUNT_DELETION_POLL_MS apart). The first gate
 * keeps a deleted user's messages (ACCOUNT_DELETE_MESSAGES keep, the default), a second gate on
 * the same services records erase with its requests, which the same chat nodes then do.
 */
let s: Services;
let eraseGateProc: ServiceProcess;
let eraseGate: GateClient;
const clients: ChatClient[] = [];

async function rows(sql: string, params: unknown[]): Promise<Record<string, unknown>[]> {
  const conn = await mysql.createConnection({
    uri: s.config.MYSQL_URL,
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  try {
    const [found] = await conn.query(sql, params);
    return found as Record<string, unknown>[];
  } finally {
    await conn.end();
  }
}

interface Person {
  uid: Uid;
  email: string;
  password: string;
  login: LoginAnswer;
  chat: ChatClient;
}

async function person(name: string, gate: GateClient = s.gate): Promise<Person> {
  const registered = await s.register(name);
  const login = await gate.login(registered.email, registered.password);
  const chat = await openChat(login, "tcp", { heartbeat: false, ackDelayMs: 0 });
  clients.push(chat);
  return { ...registered, login, chat };
}

const auth = (p: Person) => ({ uid: p.uid, token: p.login.token });

describe("DELETE /v1/account", () => {
  beforeAll(async () => {
    // Members join at once (no invitation to accept), so the groups are set up in few steps.
    s = await startServices("account", 2, { GROUP_JOIN_CONSENT: "none", ACCOUNT_DELETION_POLL_MS: 250 });
    const port = await freePort();
    eraseGateProc = spawnService("account-gate-erase", "src/gate/main.ts", {
      ...configEnv(s.config),
      GATE_PORT: String(port),
      ACCOUNT_DELETE_MESSAGES: "erase",
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(
      "the erasing gate",
      async () => (await fetch(`${url}/healthz`).catch(() => null))?.ok === true,
      90_000,
    );
    eraseGate = new GateClient(url);
  }, 200_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await eraseGateProc?.stop();
    await s?.stop();
  });

  it("ends the sessions and deletes the profile at once; the chat nodes remove friendships, groups and blocks, and keep its messages", async () => {
    const people = await Promise.all(
      ["deleter", "adminu", "memberu", "friendu", "lateru", "applicant", "blockedu"].map((n) => person(n)),
    );
    // The deleter, an admin, a member, a friend, a later member, an applicant, a blocked user.
    const [deleter, a, m, f, l, ap, bl] = people as [Person, Person, Person, Person, Person, Person, Person];

    // A friend, an application waiting for the deleter, a block it made.
    await deleter.chat.applyFriend(f.uid, "hi");
    await f.chat.replyFriend(deleter.uid, true);
    await ap.chat.applyFriend(deleter.uid, "me too");
    await deleter.chat.block(bl.uid);
    // Three groups it owns: one with an admin, one with members only (the older one inherits),
    // one with nobody else (dissolved).
    const withAdmin = await deleter.chat.createGroup("with admin", [a.uid, m.uid]);
    await deleter.chat.setGroupRole(withAdmin.groupId, a.uid, GroupRole.ADMIN);
    const membersOnly = await deleter.chat.createGroup("members only", [m.uid]);
    await new Promise((r) => setTimeout(r, 5));
    await deleter.chat.inviteToGroup(membersOnly.groupId, [l.uid]);
    const alone = await deleter.chat.createGroup("alone");
    // And one it is a plain member of.
    const theirs = await m.chat.createGroup("theirs", [deleter.uid]);
    await deleter.chat.sendText(f.uid, "hello friend");
    await deleter.chat.sendGroupText(withAdmin.groupId, "hello group");

    // A wrong password: refused, nothing removed.
    expect(await codeOf(s.gate.deleteAccount(auth(deleter), "not-the-password"))).toBe(ErrorCode.BAD_CREDENTIALS);
    expect(await codeOf(s.gate.deleteAccount({ uid: deleter.uid, token: "nope" }, deleter.password))).toBe(
      ErrorCode.TOKEN_INVALID,
    );
    expect((await f.chat.friends()).map((x) => x.user?.uid)).toContain(deleter.uid);

    const kicked = once(deleter.chat, "kicked") as Promise<[KickPush]>;
    await s.gate.deleteAccount(auth(deleter), deleter.password);
    const [push] = await kicked;
    expect(push.reason).toBe(ErrorCode.TOKEN_INVALID);

    // At once (gate's half): its token and password open nothing, its uid is no user, and its
    // name and email register again, as a new uid.
    expect(await codeOf(s.gate.node(auth(deleter)))).toBe(ErrorCode.TOKEN_INVALID);
    expect(await codeOf(s.gate.login(deleter.email, deleter.password))).toBe(ErrorCode.BAD_CREDENTIALS);
    expect(await f.chat.searchUsers(deleter.uid)).toEqual([]);
    const again = await s.register("deleter");
    expect(again.uid).not.toBe(deleter.uid);
    // Deleting twice: the old token is refused.
    expect(await codeOf(s.gate.deleteAccount(auth(deleter), deleter.password))).toBe(ErrorCode.TOKEN_INVALID);

    // Then the chat nodes' half: the request row is gone once it is all done.
    await waitFor(
      "the chat nodes to carry out the deletion",
      async () => (await rows("SELECT uid FROM account_deletions WHERE uid = ?", [deleter.uid])).length === 0,
      60_000,
    );
    // Friendships, the application and the block are gone.
    expect((await f.chat.friends()).map((x) => x.user?.uid)).not.toContain(deleter.uid);
    expect(await rows("SELECT * FROM friend_applications WHERE to_uid = ?", [deleter.uid])).toEqual([]);
    expect(await rows("SELECT * FROM user_blocks WHERE uid = ?", [deleter.uid])).toEqual([]);
    // Groups: handed to the admin, to the older member, dissolved, left.
    const infoOf = async (who: Person, groupId: string) =>
      (await who.chat.listGroups()).find((g) => g.groupId === groupId);
    expect((await infoOf(a, withAdmin.groupId))?.owner).toBe(a.uid);
    expect((await a.chat.allGroupMembers(withAdmin.groupId)).map((x) => x.uid)).not.toContain(deleter.uid);
    expect((await infoOf(m, membersOnly.groupId))?.owner).toBe(m.uid);
    expect(await rows("SELECT dissolved FROM chat_groups WHERE group_id = ?", [alone.groupId])).toEqual([
      { dissolved: 1 },
    ]);
    expect((await m.chat.allGroupMembers(theirs.groupId)).map((x) => x.uid)).toEqual([m.uid]);
    // Its messages stay (ACCOUNT_DELETE_MESSAGES=keep), from a sender nobody can look up.
    const history = await f.chat.history({ convId: convIdForPair(deleter.uid, f.uid) });
    expect(history.map((x) => [x.sender, x.text])).toContainEqual([deleter.uid, "hello friend"]);
    expect(history.every((x) => !x.recalled)).toBe(true);
  }, 180_000);

  it("with ACCOUNT_DELETE_MESSAGES=erase on the requesting gate the peers' history shows recalled placeholders", async () => {
    const [e, w] = (await Promise.all([person("eraser", eraseGate), person("witness", eraseGate)])) as [Person, Person];
    const convId = convIdForPair(e.uid, w.uid);
    await e.chat.sendText(w.uid, "private one");
    await e.chat.sendText(w.uid, "private two");
    await w.chat.sendText(e.uid, "the witness's own");
    const group = await e.chat.createGroup("erased", [w.uid]);
    await e.chat.sendGroupText(group.groupId, "group secret");

    await eraseGate.deleteAccount(auth(e), e.password);
    // Recorded with the request: the chat nodes (ACCOUNT_DELETE_MESSAGES keep themselves) erase.
    await waitFor(
      "the chat nodes to erase the messages",
      async () => (await rows("SELECT uid FROM account_deletions WHERE uid = ?", [e.uid])).length === 0,
      60_000,
    );

    const direct = await w.chat.history({ convId });
    const fromEraser = direct.filter((x) => x.sender === e.uid);
    expect(fromEraser).toHaveLength(2);
    expect(fromEraser.every((x) => x.recalled === true && x.text === "")).toBe(true);
    expect(direct.find((x) => x.sender === w.uid)?.text).toBe("the witness's own");
    const inGroup = await w.chat.history({ convId: groupConvId(group.groupId) });
    const post = inGroup.find((x) => x.sender === e.uid);
    expect(post).toMatchObject({ recalled: true, text: "" });
    // The group went to the witness.
    expect((await w.chat.listGroups()).find((g) => g.groupId === group.groupId)?.owner).toBe(w.uid);
  }, 180_000);
});

const quiet = createLogger("account-test", "warn");
const cleanupSettings = { ACCOUNT_DELETE_BATCH: 10, GROUP_DISSOLVE_HISTORY: "keep", GROUP_MEMBERS_PAGE: 1 } as const;
const [gone, friend, heir] = ["7330000000000000001", "7330000000000000002", "7330000000000000003"] as [Uid, Uid, Uid];
const groupId = "7330000000000000100";

/** Three users on SQLite: `gone` is a friend of `friend`, and owns a group with `heir` in it. */
async function seeded() {
  const sqlite = tempSqlite("sc-account-");
  const users = new SqliteUserStore(sqlite.db);
  const friends = new SqliteFriendStore(sqlite.db);
  const groups = new SqliteGroupStore(sqlite.db);
  for (const uid of [gone, friend, heir]) {
    await users.create({ uid, name: `u${uid}`, email: `${uid}@example.test`, passwordHash: "x", createdAt: 1 });
  }
  await friends.befriend(gone, friend, 1);
  await groups.create({ groupId, name: "g", owner: gone, members: [heir], maxMembers: 10 });
  const cleanup = (over: Partial<ConstructorParameters<typeof DeletedAccountCleanup>[0]> = {}) =>
    new DeletedAccountCleanup({
      friends,
      groups,
      eraser: new SqliteSentMessageEraser(sqlite.db),
      blocks: new SqliteBlockStore(sqlite.db),
      settings: cleanupSettings,
      log: quiet,
      ...over,
    });
  return { sqlite, users, friends, groups, deletions: new SqliteAccountDeletionStore(sqlite.db), cleanup };
}

describe("AccountDeletionRequest (gate's half)", () => {
  it("records the request before the profile goes, so a failure half-way is retried while the account still logs in", async () => {
    const { sqlite, users, deletions } = await seeded();
    try {
      const revoked: Uid[] = [];
      let failures = 1;
      const request = new AccountDeletionRequest({
        revokeSessions: async (uid) => {
          revoked.push(uid);
        },
        deletions,
        users: {
          async delete(uid) {
            if (failures-- > 0) throw new AppError(ErrorCode.STORAGE_UNAVAILABLE, "the database did not answer");
            return users.delete(uid);
          },
        },
        settings: { ACCOUNT_DELETE_MESSAGES: "erase" },
        log: quiet,
        now: () => 1000,
      });
      expect(await codeOf(request.request(gone))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
      // Half-way: the request is recorded (the chat nodes clean up anyway), the profile is there.
      expect((await deletions.pending("sqlite", "0", 10)).deletions).toEqual([
        { uid: gone, requestedAt: 1000, eraseMessages: true },
      ]);
      expect(await users.byUid(gone)).not.toBeNull();

      await request.request(gone);
      expect(await users.byUid(gone)).toBeNull();
      expect(await users.byName(`u${gone}`)).toBeNull();
      expect((await deletions.pending("sqlite", "0", 10)).deletions.map((d) => d.uid)).toEqual([gone]);
      expect(revoked).toEqual([gone, gone]);
      // Gate touched no chat table: the friendship and the group are the chat nodes' to remove.
    } finally {
      sqlite.remove();
    }
  });
});

describe("DeletedAccountCleanup (the chat nodes' half)", () => {
  it("finishes a cleanup that failed half-way when run again", async () => {
    const { sqlite, friends, groups, cleanup } = await seeded();
    try {
      let failures = 1;
      const flaky = {
        groupsOf: groups.groupsOf.bind(groups),
        members: groups.members.bind(groups),
        transferOwnership: groups.transferOwnership.bind(groups),
        dissolve: groups.dissolve.bind(groups),
        async removeMember(id: string, uid: Uid) {
          if (failures-- > 0) throw new AppError(ErrorCode.STORAGE_UNAVAILABLE, "the database did not answer");
          return groups.removeMember(id, uid);
        },
      };
      const run = cleanup({ groups: flaky });
      expect(await codeOf(run.cleanUp(gone, { eraseMessages: true }))).toBe(ErrorCode.STORAGE_UNAVAILABLE);
      // Half-way: the friendship and the ownership went, the membership is still there.
      expect(await friends.areFriends(friend, gone)).toBe(false);
      expect((await groups.get(groupId))?.owner).toBe(heir);
      expect(await groups.roleOf(groupId, gone)).not.toBeNull();

      const report = await run.cleanUp(gone, { eraseMessages: true });
      expect(report).toMatchObject({ friends: 0, groupsLeft: 1, groupsHandedOver: 0 });
      expect(await groups.roleOf(groupId, gone)).toBeNull();
      // Once more: nothing left to do.
      expect(await run.cleanUp(gone, { eraseMessages: true })).toMatchObject({ friends: 0, groupsLeft: 0 });
    } finally {
      sqlite.remove();
    }
  });

  it("hands a group to its oldest admin, else its oldest member", () => {
    const member = (uid: string, role: 1 | 2 | 3, joinedAt: number) => ({ uid: uid as Uid, role, joinedAt });
    const owner = member("1", 3, 1);
    expect(successorOf([owner, member("5", 1, 2), member("4", 2, 9), member("3", 2, 9)], owner.uid)).toBe("3");
    expect(successorOf([owner, member("5", 1, 3), member("6", 1, 2)], owner.uid)).toBe("6");
    expect(successorOf([owner], owner.uid)).toBeNull();
  });
});

describe("AccountDeletionWorker", () => {
  it("carries out each request under the instance's lease, forgets the uid, and keeps a failed one for the next pass", async () => {
    const { sqlite, friends, groups, deletions, cleanup } = await seeded();
    try {
      const other = "7330000000000000004" as Uid;
      await deletions.request(gone, 5, false);
      await deletions.request(other, 6, false);
      let failures = 1;
      const real = cleanup();
      const forgotten: Uid[] = [];
      const workerWith = (locks?: JobLocks) =>
        new AccountDeletionWorker({
          store: deletions,
          cleanup: {
            async cleanUp(uid, options) {
              if (uid === gone && failures-- > 0) throw new AppError(ErrorCode.STORAGE_UNAVAILABLE, "no answer");
              return real.cleanUp(uid, options);
            },
          },
          settings: { ACCOUNT_DELETION_POLL_MS: 60_000 },
          log: quiet,
          locks,
          forget: (uid) => forgotten.push(uid),
        });
      // Another process holds the instance's lease: this worker leaves the requests alone.
      const locks = new MemoryJobLocks();
      expect(await locks.acquire("account-deletion:sqlite", 60_000)).not.toBeNull();
      expect(await workerWith(locks).runOnce()).toEqual([{ instance: "sqlite", ran: false, done: 0, failed: 0 }]);
      expect((await deletions.pending("sqlite", "0", 10)).deletions).toHaveLength(2);

      const unlocked = workerWith();
      // The first request fails and stays; the second is carried out and its row goes.
      expect(await unlocked.runOnce()).toEqual([{ instance: "sqlite", ran: true, done: 1, failed: 1 }]);
      expect((await deletions.pending("sqlite", "0", 10)).deletions.map((d) => d.uid)).toEqual([gone]);
      expect(await friends.areFriends(friend, gone)).toBe(true);

      expect(await unlocked.runOnce()).toEqual([{ instance: "sqlite", ran: true, done: 1, failed: 0 }]);
      expect((await deletions.pending("sqlite", "0", 10)).deletions).toEqual([]);
      expect(await friends.areFriends(friend, gone)).toBe(false);
      expect((await groups.get(groupId))?.owner).toBe(heir);
      expect(await groups.roleOf(groupId, gone)).toBeNull();
      expect(forgotten).toEqual([gone, other, other, gone, gone]);
    } finally {
      sqlite.remove();
    }
  });
});

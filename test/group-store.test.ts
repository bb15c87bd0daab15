import mysql from "mysql2/promise";
import { describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { groupConvId, uidOf } from "../src/ids/identifiers.js";
import { GROUP_ROLE, type Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";
import { stackEnv, stackInfraUp } from "./helpers/stack.js";
import { codeOf } from "./helpers/waits.js";

/** The stack's MariaDB ports, started only if they do not answer (the shards alone are needed). */
async function shardPorts(): Promise<number[]> {
  const { mysqlPorts } = await stackEnv();
  const answers = await Promise.all(
    mysqlPorts.map((port) =>
      mysql
        .createConnection({ host: "127.0.0.1", port, user: "root", connectTimeout: 2000 })
        .then((conn) => conn.end().then(() => true))
        .catch(() => false),
    ),
  );
  return answers.every(Boolean) ? mysqlPorts : (await stackInfraUp()).mysqlPorts;
}

const backends = contractBackends({ tag: "sc-groups-", shardPorts });

describe.each(backends)("GroupStore on $name", (backend) => {
  const store = openedForSuite(backend);
  let next = 7_100_000_000_000_000_000n;
  const id = () => uidOf(next++);

  /** Rows of the group conversation's member cursors whose delivered_seq is not `seq`. */
  async function cursorsNotAt(convId: string, seq: number): Promise<number> {
    const sql = "SELECT COUNT(*) AS n FROM conversation_members WHERE conv_id = ? AND delivered_seq <> ?";
    const [row] = await store.rows(convId, sql, [convId, seq]);
    return Number(row?.n);
  }

  function text(groupId: string, sender: Uid, body: string, clientMsgId = `c-${id()}`) {
    return store.groups.append({
      groupId,
      msgId: id(),
      sender,
      clientMsgId,
      kind: MessageKind.TEXT,
      text: body,
      sentAtMs: 1_700_000_000_000,
    });
  }

  it("creates a group with its owner and members, and lists and pages them", async () => {
    const [owner, a, b] = [id(), id(), id()];
    const groupId = id();
    const created = await store.groups.create({ groupId, name: "team", owner, members: [a, b, a], maxMembers: 10 });
    expect(created).toMatchObject({ groupId, convId: groupConvId(groupId), name: "team", owner, memberCount: 3 });
    expect(await store.groups.get(groupId)).toMatchObject({ name: "team", memberCount: 3 });
    expect(await store.groups.roleOf(groupId, owner)).toBe(GROUP_ROLE.owner);
    expect(await store.groups.roleOf(groupId, a)).toBe(GROUP_ROLE.member);
    expect(await store.groups.roleOf(groupId, id())).toBeNull();
    const first = await store.groups.members(groupId, "0", 2);
    const rest = await store.groups.members(groupId, first.at(-1)?.uid ?? "0", 2);
    expect([...first, ...rest].map((m) => m.uid)).toEqual([owner, a, b]);
    expect((await store.groups.memberUids(groupId)).sort()).toEqual([owner, a, b].sort());
    expect((await store.groups.groupsOf(a, "0", 100)).map((g) => g.groupId)).toEqual([groupId]);
    expect(await store.groups.get(id())).toBeNull();
    expect(await codeOf(store.groups.create({ groupId: id(), name: "", owner, members: [], maxMembers: 10 }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(
      await codeOf(store.groups.create({ groupId: id(), name: "big", owner, members: [id(), id()], maxMembers: 2 })),
    ).toBe(ErrorCode.GROUP_TOO_LARGE);
  });

  it("stores a group message once with gapless seqs, dedupes resends and refuses non-members", async () => {
    const [owner, a] = [id(), id()];
    const groupId = id();
    await store.groups.create({ groupId, name: "g", owner, members: [a], maxMembers: 10 });
    const one = await text(groupId, owner, "one", "same");
    const two = await text(groupId, a, "two");
    expect([one.message.seq, two.message.seq]).toEqual([1, 2]);
    expect(one.message).toMatchObject({ convId: groupConvId(groupId), recipient: "0", sender: owner });
    const again = await text(groupId, owner, "one (resent)", "same");
    expect(again).toMatchObject({ duplicate: true, message: { seq: 1, text: "one", msgId: one.message.msgId } });
    expect(await codeOf(text(groupId, id(), "intruder"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(text(id(), owner, "no such group"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(
      (await store.messages.history(a, groupConvId(groupId), { afterSeq: 0, beforeSeq: 0, limit: 10 })).map(
        (m) => m.text,
      ),
    ).toEqual(["one", "two"]);

    // A file message keeps its reference: in the answer, in a resend's answer, and in history.
    const file = { id: id(), name: "plan.pdf", size: "1234", contentType: "application/pdf" };
    const sent = { groupId, msgId: id(), sender: a, clientMsgId: "f-1", kind: MessageKind.FILE, text: "" };
    const withFile = await store.groups.append({ ...sent, sentAtMs: 1_700_000_000_001, file });
    expect(withFile.message).toMatchObject({ seq: 3, kind: MessageKind.FILE, file });
    expect((await store.groups.append({ ...sent, msgId: id(), sentAtMs: 1, file })).message.file).toEqual(file);
    const [last] = await store.messages.history(owner, groupConvId(groupId), { afterSeq: 2, beforeSeq: 0, limit: 10 });
    expect(last?.file).toEqual(file);
  });

  it("lets offline members sync group messages with no per-member write per message", async () => {
    const owner = id();
    const members = Array.from({ length: 20 }, id);
    const groupId = id();
    const convId = groupConvId(groupId);
    await store.groups.create({ groupId, name: "sync", owner, members, maxMembers: 100 });
    for (let i = 1; i <= 5; i++) await text(groupId, owner, `m${i}`);
    // Only the sender's own cursor moved: the 20 other members' rows were not written.
    expect(await cursorsNotAt(convId, 0)).toBe(1);
    const member = members[7] as Uid;
    const page = await store.messages.pending(member, 3);
    expect(page.messages.map((m) => m.text)).toEqual(["m1", "m2", "m3"]);
    expect(page.more).toBe(true);
    await store.messages.ack(member, [{ convId, seq: 3 }]);
    expect((await store.messages.pending(member, 10)).messages.map((m) => m.seq)).toEqual([4, 5]);
    expect((await store.messages.pending(owner, 10)).messages).toEqual([]);
  });

  it("adds members at the end of the conversation, removes them, renames and sets roles", async () => {
    const [owner, a, late] = [id(), id(), id()];
    const groupId = id();
    const convId = groupConvId(groupId);
    await store.groups.create({ groupId, name: "before", owner, members: [a], maxMembers: 3 });
    await text(groupId, owner, "old");
    expect(await store.groups.addMembers(groupId, [a, late], 3)).toEqual([late]);
    expect(await store.groups.get(groupId)).toMatchObject({ memberCount: 3 });
    expect((await store.messages.pending(late, 10)).messages).toEqual([]);
    await text(groupId, owner, "new");
    expect((await store.messages.pending(late, 10)).messages.map((m) => m.text)).toEqual(["new"]);
    expect(await codeOf(store.groups.addMembers(groupId, [id()], 3))).toBe(ErrorCode.GROUP_TOO_LARGE);
    expect(await codeOf(store.groups.addMembers(id(), [id()], 3))).toBe(ErrorCode.GROUP_NOT_FOUND);

    expect(await store.groups.removeMember(groupId, a)).toBe(true);
    expect(await store.groups.removeMember(groupId, a)).toBe(false);
    expect(await store.groups.roleOf(groupId, a)).toBeNull();
    expect(await store.groups.get(groupId)).toMatchObject({ memberCount: 2 });
    expect((await store.messages.pending(a, 10)).messages).toEqual([]);
    expect(await codeOf(store.messages.history(a, convId, { afterSeq: 0, beforeSeq: 0, limit: 10 }))).toBe(
      ErrorCode.NOT_PARTICIPANT,
    );
    expect(await codeOf(text(groupId, a, "after kick"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await store.groups.groupsOf(a, "0", 100)).toEqual([]);

    expect(await store.groups.rename(groupId, "after")).toMatchObject({ name: "after" });
    expect(await store.groups.setRole(groupId, late, GROUP_ROLE.admin)).toBe(true);
    expect(await store.groups.roleOf(groupId, late)).toBe(GROUP_ROLE.admin);

    // Hand-over: only from the owner, only to a member, all or nothing.
    expect(await store.groups.transferOwnership(groupId, late, owner)).toBe(false);
    expect(await store.groups.transferOwnership(groupId, owner, a)).toBe(false);
    expect(await store.groups.transferOwnership(groupId, owner, owner)).toBe(false);
    expect(await store.groups.get(groupId)).toMatchObject({ owner });
    expect(await store.groups.transferOwnership(groupId, owner, late)).toBe(true);
    expect(await store.groups.get(groupId)).toMatchObject({ owner: late });
    expect(await store.groups.roleOf(groupId, late)).toBe(GROUP_ROLE.owner);
    expect(await store.groups.roleOf(groupId, owner)).toBe(GROUP_ROLE.admin);
    expect(await store.groups.transferOwnership(groupId, owner, late)).toBe(false);
  });

  it("holds a 2,000-member group: one insert to create, pages of members, one row per message", async () => {
    const owner = id();
    const members = Array.from({ length: 1999 }, id);
    const groupId = id();
    const group = await store.groups.create({ groupId, name: "big", owner, members, maxMembers: 5000 });
    expect(group.memberCount).toBe(2000);
    const seen: Uid[] = [];
    for (let after: Uid = "0"; ; ) {
      const page = await store.groups.members(groupId, after, 500);
      seen.push(...page.map((m) => m.uid));
      if (page.length < 500) break;
      after = page.at(-1)?.uid as Uid;
    }
    expect(seen).toEqual([owner, ...members]);
    expect(await store.groups.memberUids(groupId)).toHaveLength(2000);
    await text(groupId, owner, "hello all");
    for (const member of [members[0], members[999], members[1998]] as Uid[]) {
      expect((await store.messages.pending(member, 10)).messages.map((m) => m.text)).toEqual(["hello all"]);
    }
    expect(await cursorsNotAt(groupConvId(groupId), 0)).toBe(1);
  }, 120_000);

  it("invitations: one per (group, user), renewed, listed newest first, expire; accept joins once, decline drops", async () => {
    const [owner, alice, bob, carol] = [id(), id(), id(), id()];
    const [g1, g2] = [id(), id()];
    await store.groups.create({ groupId: g1, name: "one", owner, members: [bob], maxMembers: 3 });
    await store.groups.create({ groupId: g2, name: "two", owner, members: [], maxMembers: 10 });
    // A member is not invited; inviting again renews the time.
    expect(await store.groups.invite(g1, owner, [alice, bob, alice], 1_000)).toEqual([alice]);
    expect(await store.groups.invite(g2, owner, [alice], 2_000)).toEqual([alice]);
    expect(await store.groups.invite(g1, bob, [alice], 3_000)).toEqual([alice]);
    expect(await codeOf(store.groups.invite(id(), owner, [alice], 1))).toBe(ErrorCode.GROUP_NOT_FOUND);
    const open = await store.groups.invitationsOf(alice, 0, 0, 10);
    expect(open.map((i) => [i.group.groupId, i.inviter, i.createdAt])).toEqual([
      [g1, bob, 3_000],
      [g2, owner, 2_000],
    ]);
    expect(open[0]?.group).toMatchObject({ name: "one", memberCount: 2 });
    // Paged by time, and older than sinceMs is expired: not listed, not accepted.
    expect((await store.groups.invitationsOf(alice, 0, 3_000, 10)).map((i) => i.group.groupId)).toEqual([g2]);
    expect((await store.groups.invitationsOf(alice, 2_500, 0, 10)).map((i) => i.group.groupId)).toEqual([g1]);
    expect(await store.groups.answerInvitation(g2, alice, { accept: true, sinceMs: 2_500, maxMembers: 10 })).toBeNull();
    expect(await store.groups.roleOf(g2, alice)).toBeNull();
    // Accept joins at the conversation's end, once.
    await text(g1, owner, "before alice");
    const joined = await store.groups.answerInvitation(g1, alice, { accept: true, sinceMs: 0, maxMembers: 3 });
    expect(joined).toMatchObject({ groupId: g1, memberCount: 3 });
    expect(await store.groups.roleOf(g1, alice)).toBe(GROUP_ROLE.member);
    expect((await store.messages.pending(alice, 10)).messages).toEqual([]);
    expect(await store.groups.answerInvitation(g1, alice, { accept: true, sinceMs: 0, maxMembers: 3 })).toBeNull();
    expect(await store.groups.invitationsOf(alice, 0, 0, 10)).toEqual([]);
    // A full group keeps the invitation; a decline drops it without joining.
    expect(await store.groups.invite(g1, owner, [carol], 4_000)).toEqual([carol]);
    expect(await codeOf(store.groups.answerInvitation(g1, carol, { accept: true, sinceMs: 0, maxMembers: 3 }))).toBe(
      ErrorCode.GROUP_TOO_LARGE,
    );
    expect((await store.groups.invitationsOf(carol, 0, 0, 10)).map((i) => i.group.groupId)).toEqual([g1]);
    expect(await store.groups.answerInvitation(g1, carol, { accept: false, sinceMs: 0, maxMembers: 3 })).toMatchObject({
      memberCount: 3,
    });
    expect(await store.groups.roleOf(g1, carol)).toBeNull();
    expect(await store.groups.invitationsOf(carol, 0, 0, 10)).toEqual([]);
    // Added directly: the open invitation is spent.
    expect(await store.groups.invite(g2, owner, [bob], 5_000)).toEqual([bob]);
    expect(await store.groups.addMembers(g2, [bob], 10)).toEqual([bob]);
    expect(await store.groups.invitationsOf(bob, 0, 0, 10)).toEqual([]);
  });

  it("lists a user's groups a page at a time, in group id order", async () => {
    const owner = id();
    const member = id();
    const groups = Array.from({ length: 5 }, id);
    for (const groupId of groups) {
      await store.groups.create({ groupId, name: "g", owner, members: [member], maxMembers: 10 });
    }
    // One left: never listed, and the pages still fill.
    await store.groups.removeMember(groups[1] as string, member);
    const seen: string[] = [];
    for (let after = "0"; ; ) {
      const page = await store.groups.groupsOf(member, after, 2);
      seen.push(...page.map((g) => g.groupId));
      if (page.length < 2) break;
      after = page.at(-1)?.groupId as string;
    }
    expect(seen).toEqual(groups.filter((_, i) => i !== 1));
    expect((await store.groups.groupsOf(owner, groups[3] as string, 10)).map((g) => g.groupId)).toEqual([groups[4]]);
  });
});

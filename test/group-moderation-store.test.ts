import { describe, expect, it } from "vitest";
import { MessageKind } from "../packages/protocol/src/wire.js";
import { ErrorCode } from "../src/errors.js";
import { groupConvId, uidOf } from "../src/ids/identifiers.js";
import { GROUP_ROLE, type Uid } from "../src/storage/ports.js";
import { contractBackends, openedForSuite } from "./helpers/backends.js";
import { codeOf } from "./helpers/waits.js";

/** Group moderation (issue 17) through the GroupStore API: the same contract on every backend. */
const backends = contractBackends({ tag: "sc-moderation-" });

const SENT_AT = 1_700_000_000_000;
const everything = { afterSeq: 0, beforeSeq: 0, limit: 100 };

describe.each(backends)("group moderation on $name", (backend) => {
  const s = openedForSuite(backend);
  let next = 7_500_000_000_000_000_000n;
  const id = () => uidOf(next++);

  function post(groupId: string, sender: Uid, text: string, sentAtMs = SENT_AT) {
    return s.groups.append({
      groupId,
      msgId: id(),
      sender,
      clientMsgId: `c-${id()}`,
      kind: MessageKind.TEXT,
      text,
      sentAtMs,
    });
  }

  /** A group of an owner, an admin and two members. */
  async function team(): Promise<{ groupId: string; owner: Uid; admin: Uid; a: Uid; b: Uid }> {
    const [owner, admin, a, b, groupId] = [id(), id(), id(), id(), id()];
    await s.groups.create({ groupId, name: "team", owner, members: [admin, a, b], maxMembers: 10 });
    await s.groups.setRole(groupId, admin, GROUP_ROLE.admin);
    return { groupId, owner, admin, a, b };
  }

  async function count(groupId: string, sql: string, params: unknown[]): Promise<number> {
    const [row] = await s.rows(groupConvId(groupId), sql, params);
    return Number(row?.n);
  }

  /** Sharded only (the index of each user's conversations): whether uid's shard lists convId. */
  async function indexed(uid: Uid, convId: string): Promise<boolean> {
    const sql = "SELECT 1 FROM user_conversations WHERE uid = ? AND conv_id = ?";
    return (await s.rows(uid, sql, [uid, convId])).length > 0;
  }

  it("a plain group has no moderation fields, on every read", async () => {
    const { groupId, owner, a } = await team();
    const created = await s.groups.create({ groupId: id(), name: "plain", owner, members: [], maxMembers: 5 });
    for (const g of [created, await s.groups.get(groupId), ...(await s.groups.groupsOf(a, "0", 10))]) {
      expect(g?.mutedAll).toBeUndefined();
      expect(g?.announcement).toBeUndefined();
      expect(g?.joinApproval).toBeUndefined();
      expect(g?.dissolved).toBeUndefined();
    }
    for (const m of await s.groups.members(groupId, "0", 10)) expect(m.mutedUntil).toBeUndefined();
    expect((await s.groups.managers(groupId)).sort()).toEqual(
      [owner, (await s.groups.members(groupId, "0", 10)).find((m) => m.role === GROUP_ROLE.admin)?.uid].sort(),
    );
    expect(await s.groups.managers(id())).toEqual([]);
  });

  it("a muted member's posts are refused until the mute ends; unmuting ends it at once", async () => {
    const { groupId, owner, a, b } = await team();
    const until = SENT_AT + 60_000;
    expect(await s.groups.mute(groupId, a, until)).toBe(true);
    // Twice with the same time is still a mute of a member.
    expect(await s.groups.mute(groupId, a, until)).toBe(true);
    expect((await s.groups.members(groupId, "0", 10)).find((m) => m.uid === a)?.mutedUntil).toBe(until);
    expect(await codeOf(post(groupId, a, "muted", SENT_AT))).toBe(ErrorCode.GROUP_MUTED);
    expect(await codeOf(post(groupId, a, "still muted", until - 1))).toBe(ErrorCode.GROUP_MUTED);
    expect((await post(groupId, a, "the mute ended", until)).message.seq).toBe(1);
    expect((await post(groupId, b, "b is not muted")).message.seq).toBe(2);
    expect((await post(groupId, owner, "nor the owner")).message.seq).toBe(3);

    expect(await s.groups.mute(groupId, b, Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(await codeOf(post(groupId, b, "forever"))).toBe(ErrorCode.GROUP_MUTED);
    expect(await s.groups.mute(groupId, b, 0)).toBe(true);
    expect((await s.groups.members(groupId, "0", 10)).find((m) => m.uid === b)?.mutedUntil).toBeUndefined();
    expect((await post(groupId, b, "unmuted")).message.seq).toBe(4);

    expect(await s.groups.mute(groupId, id(), until)).toBe(false);
    expect(await s.groups.mute(id(), a, until)).toBe(false);
    expect(await codeOf(s.groups.mute(groupId, a, -1))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(await codeOf(s.groups.mute(groupId, a, 1.5))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it("with everyone muted only admins and the owner post; a muted admin is refused too", async () => {
    const { groupId, owner, admin, a } = await team();
    const muted = await s.groups.setMutedAll(groupId, true);
    expect(muted).toMatchObject({ groupId, mutedAll: true });
    expect(await s.groups.get(groupId)).toMatchObject({ mutedAll: true });
    expect((await s.groups.groupsOf(a, "0", 10))[0]).toMatchObject({ mutedAll: true });
    expect(await codeOf(post(groupId, a, "member"))).toBe(ErrorCode.GROUP_MUTED);
    expect((await post(groupId, admin, "admin")).message.seq).toBe(1);
    expect((await post(groupId, owner, "owner")).message.seq).toBe(2);
    await s.groups.mute(groupId, admin, SENT_AT + 1000);
    expect(await codeOf(post(groupId, admin, "a muted admin"))).toBe(ErrorCode.GROUP_MUTED);
    const open = await s.groups.setMutedAll(groupId, false);
    expect(open?.mutedAll).toBeUndefined();
    expect((await post(groupId, a, "member again")).message.seq).toBe(3);
    expect(await s.groups.setMutedAll(id(), true)).toBeNull();
    // Not a member still says so first, muted group or not.
    await s.groups.setMutedAll(groupId, true);
    expect(await codeOf(post(groupId, id(), "outsider"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
  });

  it("sets, shows and removes the announcement", async () => {
    const { groupId, admin, a } = await team();
    const set = await s.groups.announce(groupId, "meeting at 10 ☕", admin, SENT_AT);
    const announcement = { text: "meeting at 10 ☕", by: admin, atMs: SENT_AT };
    expect(set?.announcement).toEqual(announcement);
    expect((await s.groups.get(groupId))?.announcement).toEqual(announcement);
    expect((await s.groups.groupsOf(a, "0", 10))[0]?.announcement).toEqual(announcement);
    const removed = await s.groups.announce(groupId, "", admin, SENT_AT + 1);
    expect(removed?.announcement).toBeUndefined();
    expect((await s.groups.get(groupId))?.announcement).toBeUndefined();
    expect(await s.groups.announce(id(), "none", admin, SENT_AT)).toBeNull();
    expect(await codeOf(s.groups.announce(groupId, "x".repeat(70_000), admin, SENT_AT))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
  });

  it("join requests: asked, renewed, listed newest first, declined, expired and admitted with an exact count", async () => {
    const { groupId, owner, a } = await team();
    const convId = groupConvId(groupId);
    expect(await s.groups.setJoinApproval(groupId, true)).toMatchObject({ joinApproval: true });
    expect((await s.groups.get(groupId))?.joinApproval).toBe(true);
    await post(groupId, owner, "before anyone asked");
    const [x, y, z, old] = [id(), id(), id(), id()];
    await s.groups.requestJoin({ groupId, uid: x, message: "hi", createdAt: SENT_AT + 1 });
    await s.groups.requestJoin({ groupId, uid: y, message: "me too", createdAt: SENT_AT + 2 });
    await s.groups.requestJoin({ groupId, uid: old, message: "long ago", createdAt: SENT_AT - 10_000 });
    // Again: renews the message and the time.
    await s.groups.requestJoin({ groupId, uid: x, message: "hi again", createdAt: SENT_AT + 3 });
    expect(await s.groups.joinRequests(groupId, SENT_AT, 10)).toEqual([
      { groupId, uid: x, message: "hi again", createdAt: SENT_AT + 3 },
      { groupId, uid: y, message: "me too", createdAt: SENT_AT + 2 },
    ]);
    expect((await s.groups.joinRequests(groupId, 0, 10)).map((r) => r.uid)).toEqual([x, y, old]);
    expect(await s.groups.joinRequests(groupId, SENT_AT, 1)).toHaveLength(1);
    expect(await codeOf(s.groups.requestJoin({ groupId, uid: a, message: "", createdAt: SENT_AT }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(await codeOf(s.groups.requestJoin({ groupId: id(), uid: x, message: "", createdAt: SENT_AT }))).toBe(
      ErrorCode.GROUP_NOT_FOUND,
    );

    const answer = (accept: boolean, sinceMs = SENT_AT, maxMembers = 10) => ({ accept, sinceMs, maxMembers });
    expect(await s.groups.answerJoin(groupId, y, answer(false))).toBe(true);
    expect(await s.groups.roleOf(groupId, y)).toBeNull();
    expect(await s.groups.answerJoin(groupId, y, answer(true))).toBe(false);
    // Expired: not admitted, and gone.
    expect(await s.groups.answerJoin(groupId, old, answer(true))).toBe(false);
    expect(await s.groups.joinRequests(groupId, 0, 10)).toEqual([expect.objectContaining({ uid: x })]);
    // A full group keeps the request.
    expect(await codeOf(s.groups.answerJoin(groupId, x, answer(true, SENT_AT, 4)))).toBe(ErrorCode.GROUP_TOO_LARGE);
    expect(await s.groups.joinRequests(groupId, 0, 10)).toHaveLength(1);
    expect(await s.groups.answerJoin(groupId, x, answer(true))).toBe(true);
    expect(await s.groups.roleOf(groupId, x)).toBe(GROUP_ROLE.member);
    expect((await s.groups.get(groupId))?.memberCount).toBe(5);
    expect(await s.groups.joinRequests(groupId, 0, 10)).toEqual([]);
    // The joiner starts at the conversation's end, reads older messages with history, and posts.
    expect((await s.messages.pending(x, 10)).messages).toEqual([]);
    expect((await s.messages.history(x, convId, everything)).map((m) => m.text)).toEqual(["before anyone asked"]);
    expect((await post(groupId, x, "thanks")).message.seq).toBe(2);
    expect((await s.groups.groupsOf(x, "0", 10)).map((g) => g.groupId)).toEqual([groupId]);

    // Joining otherwise (added by an admin) spends an open request.
    await s.groups.requestJoin({ groupId, uid: z, message: "", createdAt: SENT_AT + 5 });
    await s.groups.addMembers(groupId, [z], 10);
    expect(await s.groups.joinRequests(groupId, 0, 10)).toEqual([]);
    expect(await s.groups.answerJoin(groupId, z, answer(true))).toBe(false);
    expect((await s.groups.get(groupId))?.memberCount).toBe(6);
    expect(await s.groups.answerJoin(id(), x, answer(true))).toBe(false);
    expect((await s.groups.setJoinApproval(groupId, false))?.joinApproval).toBeUndefined();
  });

  for (const removeHistory of [false, true]) {
    it(`dissolves a group in one go (${removeHistory ? "removing" : "keeping"} its history)`, async () => {
      const { groupId, owner, admin, a, b } = await team();
      const convId = groupConvId(groupId);
      const first = await post(groupId, a, "first");
      await post(groupId, b, "second");
      await s.messages.change({
        convId,
        targetSeq: first.message.seq,
        msgId: id(),
        actor: b,
        sentAtMs: SENT_AT,
        decide: () => ({ kind: "react", emoji: "👍", add: true, maxDistinct: 5 }),
      });
      await s.messages.hide(a, convId, [2]);
      const [invitee, asking] = [id(), id()];
      await s.groups.invite(groupId, owner, [invitee], SENT_AT);
      await s.groups.requestJoin({ groupId, uid: asking, message: "", createdAt: SENT_AT });

      const former = await s.groups.dissolve(groupId, removeHistory);
      expect(former.sort()).toEqual([owner, admin, a, b].sort());
      expect(await s.groups.get(groupId)).toMatchObject({ groupId, dissolved: true, memberCount: 0 });
      expect(await s.groups.groupsOf(a, "0", 10)).toEqual([]);
      expect(await s.groups.members(groupId, "0", 10)).toEqual([]);
      expect(await s.groups.roleOf(groupId, owner)).toBeNull();
      expect(await s.groups.managers(groupId)).toEqual([]);
      for (const table of ["group_members", "group_invitations", "group_join_requests"]) {
        expect(await count(groupId, `SELECT COUNT(*) AS n FROM ${table} WHERE group_id = ?`, [groupId])).toBe(0);
      }

      // Nobody posts, joins or changes anything any more.
      expect(await codeOf(post(groupId, a, "after"))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await codeOf(s.groups.addMembers(groupId, [id()], 10))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await codeOf(s.groups.invite(groupId, owner, [id()], SENT_AT))).toBe(ErrorCode.GROUP_DISSOLVED);
      const open = { accept: true, sinceMs: 0, maxMembers: 10 };
      expect(await codeOf(s.groups.answerInvitation(groupId, invitee, open))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await codeOf(s.groups.requestJoin({ groupId, uid: asking, message: "", createdAt: SENT_AT }))).toBe(
        ErrorCode.GROUP_DISSOLVED,
      );
      expect(await codeOf(s.groups.answerJoin(groupId, asking, open))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await codeOf(s.groups.setMutedAll(groupId, true))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await codeOf(s.groups.announce(groupId, "x", owner, SENT_AT))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await codeOf(s.groups.setJoinApproval(groupId, true))).toBe(ErrorCode.GROUP_DISSOLVED);
      expect(await s.groups.mute(groupId, a, SENT_AT)).toBe(false);
      const change = {
        convId,
        targetSeq: first.message.seq,
        msgId: id(),
        actor: a,
        sentAtMs: SENT_AT,
        decide: () => ({ kind: "recall" as const }),
      };
      expect(await codeOf(s.messages.change(change))).toBe(ErrorCode.GROUP_DISSOLVED);

      const historyRows = (table: string) =>
        count(groupId, `SELECT COUNT(*) AS n FROM ${table} WHERE conv_id = ?`, [convId]);
      if (removeHistory) {
        for (const table of ["messages", "message_reactions", "message_hidden", "conversation_members"]) {
          expect(await historyRows(table)).toBe(0);
        }
        expect(await codeOf(s.messages.history(a, convId, everything))).toBe(ErrorCode.NOT_PARTICIPANT);
        if (s.shards) for (const uid of former) expect(await indexed(uid, convId)).toBe(false);
      } else {
        // Former members still read it, with their own marks: b's reaction, a's hidden message.
        expect((await s.messages.history(b, convId, everything)).map((m) => m.text)).toEqual(["first", "second", ""]);
        const asA = await s.messages.history(a, convId, everything);
        expect(asA.find((m) => m.seq === 2)?.deletedForMe).toBe(true);
        expect(await historyRows("message_reactions")).toBe(1);
        if (s.shards) for (const uid of former) expect(await indexed(uid, convId)).toBe(true);
      }
      // Dissolving again finds no member.
      expect(await s.groups.dissolve(groupId, removeHistory)).toEqual([]);
    });
  }

  it("dissolving a group that does not exist answers GROUP_NOT_FOUND", async () => {
    expect(await codeOf(s.groups.dissolve(id(), false))).toBe(ErrorCode.GROUP_NOT_FOUND);
    expect(await codeOf(s.groups.dissolve("not-a-group", false))).toBe(ErrorCode.GROUP_NOT_FOUND);
  });
});

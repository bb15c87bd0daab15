import type { ChatClient } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupEventKind, type GroupEventPush, type GroupInvitation } from "../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../src/errors.js";
import { type MemoryNode, startMemoryNode } from "./helpers/memory-node.js";

/**
 * Nobody is put into a group without consent (issue 14, item 5): an invitee joins by accepting,
 * unless GROUP_JOIN_CONSENT lets the inviter's friends in; creating and inviting have daily
 * budgets; the group list is paged. One chat node over TCP on the embedded adapters (the store
 * contract suite runs the same operations on MySQL and the shards).
 */
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => "answered",
    (err: unknown) => (err instanceof AppError ? err.code : String(err)),
  );

function nextInvitation(client: ChatClient): Promise<GroupInvitation> {
  return new Promise((resolve) => client.once("groupInvitation", resolve));
}

function nextGroupEvent(client: ChatClient): Promise<GroupEventPush> {
  return new Promise((resolve) => client.once("groupEvent", resolve));
}

describe("group consent, by default (GROUP_JOIN_CONSENT=invitation)", () => {
  let memory: MemoryNode;
  let alice: { uid: string; client: ChatClient };
  let bob: { uid: string; client: ChatClient };
  let carol: { uid: string; client: ChatClient };

  beforeAll(async () => {
    memory = await startMemoryNode({ GROUP_CREATES_PER_DAY: 3, GROUP_INVITES_PER_DAY: 4 });
    alice = await memory.user("alice");
    bob = await memory.user("bob");
    carol = await memory.user("carol");
  });
  afterAll(() => memory?.close());

  it("an invitee is asked, not added: it joins by accepting, or declines; an answer is taken once", async () => {
    const invitation = nextInvitation(bob.client);
    const group = await alice.client.createGroup("book club", [bob.uid, carol.uid]);
    expect(group).toMatchObject({ memberCount: 1, owner: alice.uid });
    expect(group.invited.sort()).toEqual([bob.uid, carol.uid].sort());
    expect(await invitation).toMatchObject({
      group: { groupId: group.groupId, name: "book club" },
      inviter: { uid: alice.uid, name: "alice" },
    });
    // Not a member until it accepts: no posts, no history, not in its list.
    expect(await codeOf(bob.client.sendGroupText(group.groupId, "hi?"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await codeOf(bob.client.history({ convId: group.convId }))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    expect(await bob.client.listGroups()).toEqual([]);
    const open = await bob.client.groupInvitations();
    expect(open.invitations.map((i) => i.group?.groupId)).toEqual([group.groupId]);

    const told = nextGroupEvent(alice.client);
    expect(await bob.client.answerGroupInvitation(group.groupId, true)).toMatchObject({ memberCount: 2 });
    expect(await told).toMatchObject({ kind: GroupEventKind.MEMBERS_ADDED, actor: bob.uid, uids: [bob.uid] });
    expect((await bob.client.listGroups()).map((g) => g.groupId)).toEqual([group.groupId]);
    const got = new Promise<string>((resolve) => bob.client.once("message", (m) => resolve(m.text)));
    await alice.client.sendGroupText(group.groupId, "welcome");
    expect(await got).toBe("welcome");
    expect(await codeOf(bob.client.answerGroupInvitation(group.groupId, true))).toBe(ErrorCode.NOT_FOUND);
    expect((await bob.client.groupInvitations()).invitations).toEqual([]);

    expect(await carol.client.answerGroupInvitation(group.groupId, false)).toBeUndefined();
    expect(await codeOf(carol.client.answerGroupInvitation(group.groupId, true))).toBe(ErrorCode.NOT_FOUND);
    expect(await codeOf(carol.client.sendGroupText(group.groupId, "hi?"))).toBe(ErrorCode.NOT_GROUP_MEMBER);
    // A member is an admin's to invite: bob (a member) cannot, and nobody can answer for another.
    expect(await codeOf(bob.client.inviteToGroup(group.groupId, [carol.uid]))).toBe(ErrorCode.GROUP_PERMISSION_DENIED);
    expect(await codeOf(carol.client.answerGroupInvitation("123", true))).toBe(ErrorCode.NOT_FOUND);
  });

  it("counts creates and invitees a day; an invite past the budget is refused whole and spends nothing", async () => {
    // The first test spent one create and two invitees of alice's budgets (3 and 4).
    const group = await alice.client.createGroup("second", []);
    const dave = await memory.user("dave");
    const erin = await memory.user("erin");
    const frank = await memory.user("frank");
    expect(await codeOf(alice.client.inviteToGroup(group.groupId, [dave.uid, erin.uid, frank.uid]))).toBe(
      ErrorCode.RATE_LIMITED,
    );
    expect((await dave.client.groupInvitations()).invitations).toEqual([]);
    expect(await alice.client.inviteToGroup(group.groupId, [dave.uid, erin.uid])).toEqual({
      added: [],
      invited: [dave.uid, erin.uid],
    });
    expect(await codeOf(alice.client.inviteToGroup(group.groupId, [frank.uid]))).toBe(ErrorCode.RATE_LIMITED);
    await alice.client.createGroup("third", []);
    expect(await codeOf(alice.client.createGroup("fourth", []))).toBe(ErrorCode.RATE_LIMITED);
    // Each user has budgets of their own.
    expect((await bob.client.createGroup("bob's", [frank.uid])).invited).toEqual([frank.uid]);
  });
});

describe("group consent with GROUP_JOIN_CONSENT=friends, expiry and a paged group list", () => {
  let memory: MemoryNode;

  beforeAll(async () => {
    memory = await startMemoryNode({
      GROUP_JOIN_CONSENT: "friends",
      GROUP_INVITATION_TTL_SECONDS: 1,
      GROUP_LIST_PAGE: 2,
    });
  });
  afterAll(() => memory?.close());

  it("the inviter's friends join at once, others are asked", async () => {
    const alice = await memory.user("alice");
    const bob = await memory.user("bob");
    const carol = await memory.user("carol");
    await alice.client.applyFriend(bob.uid, "hi");
    await bob.client.replyFriend(alice.uid, true);
    const created = nextGroupEvent(bob.client);
    const group = await alice.client.createGroup("friends first", [bob.uid, carol.uid]);
    expect(group).toMatchObject({ memberCount: 2, invited: [carol.uid] });
    expect(await created).toMatchObject({ kind: GroupEventKind.CREATED, uids: [bob.uid] });
    expect((await carol.client.groupInvitations()).invitations).toHaveLength(1);
  });

  it("an invitation expires after GROUP_INVITATION_TTL_SECONDS: not listed, not accepted", async () => {
    const alice = await memory.user("alice2");
    const dave = await memory.user("dave");
    const group = await alice.client.createGroup("short-lived", [dave.uid]);
    expect(group.invited).toEqual([dave.uid]);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await dave.client.groupInvitations()).invitations).toEqual([]);
    expect(await codeOf(dave.client.answerGroupInvitation(group.groupId, true))).toBe(ErrorCode.NOT_FOUND);
    // Inviting again renews it.
    await alice.client.inviteToGroup(group.groupId, [dave.uid]);
    expect(await dave.client.answerGroupInvitation(group.groupId, true)).toMatchObject({ memberCount: 2 });
  });

  it("pages the group list and the invitations by GROUP_LIST_PAGE", async () => {
    const owner = await memory.user("owner");
    const member = await memory.user("member");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const group = await owner.client.createGroup(`g${i}`, [member.uid]);
      ids.push(group.groupId);
    }
    const invitations = await member.client.groupInvitations();
    expect(invitations.invitations).toHaveLength(2);
    expect(invitations.more).toBe(true);
    const rest = await member.client.groupInvitations(invitations.invitations[1]?.createdAtMs);
    expect(rest.invitations.length).toBeGreaterThan(0);
    for (const id of ids) await member.client.answerGroupInvitation(id, true);
    const first = await member.client.groupPage();
    expect(first.groups.map((g) => g.groupId)).toEqual(ids.slice(0, 2));
    expect(first.more).toBe(true);
    expect((await member.client.listGroups()).map((g) => g.groupId)).toEqual(ids);
  });
});

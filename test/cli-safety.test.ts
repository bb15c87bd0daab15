import { type ChatClient, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChatMessage,
  GroupEventKind,
  type GroupEventPush,
  type GroupJoinApplication,
} from "../packages/protocol/src/wire.js";
import { AppError, ErrorCode } from "../src/errors.js";
import type { Services } from "./helpers/services.js";
import { type CliUser, terminalClientRun } from "./helpers/terminal-client.js";
import { until } from "./helpers/waits.js";

/**
 * The terminal client's safety and conversation-management commands (issue 17) against every
 * service as its own process (two chat nodes): block and unblock, reports, pin, hide and clear,
 * group mutes with a refused post, the announcement, join approval, dissolving, and deleting an
 * account; the other users watch through SDK sessions, and chat mode prints the new pushes.
 */
const run = terminalClientRun();
const { cli, refused, clients } = run;
let s: Services;
let alice: CliUser;
let bob: CliUser;
let carol: CliUser;
let bobChat: ChatClient;
let carolChat: ChatClient;
const bobGot: ChatMessage[] = [];
const carolEvents: GroupEventPush[] = [];
let groupId = "";

/** The error code an SDK call is refused with. */
async function codeOf(work: Promise<unknown>): Promise<ErrorCode | "ok"> {
  return work.then(
    () => "ok" as const,
    (err: unknown) => (err instanceof AppError ? err.code : ErrorCode.INTERNAL),
  );
}

beforeAll(async () => {
  [alice, bob, carol] = (await run.start("safety-cli", "scalice", "scbob", "sccarol")) as [CliUser, CliUser, CliUser];
  s = run.services;
  // bob and carol watch over WebSocket (web devices): the CLI's desktop logins never take their place.
  bobChat = await openChat(await s.gate.login(bob.email, bob.password), "ws");
  carolChat = await openChat(await s.gate.login(carol.email, carol.password), "ws");
  clients.push(bobChat, carolChat);
  bobChat.on("message", (m) => bobGot.push(m));
  carolChat.on("groupEvent", (e) => carolEvents.push(e));
}, 120_000);

afterAll(() => run.stop());

describe("terminal client safety commands", () => {
  let convId = "";

  it("blocks and unblocks: the blocked user's messages are refused both ways, then go again", async () => {
    const first = await bobChat.sendText(alice.uid, "hello alice");
    convId = first.convId;
    expect((await cli("block", "scalice", alice.password, bob.uid)).stdout).toContain(`blocked ${bob.uid}`);
    expect((await cli("blocked", "scalice", alice.password)).stdout).toMatch(new RegExp(`^${bob.uid}  scbob  since `));
    // Neither way: bob's message to alice, and alice's to bob.
    expect(await codeOf(bobChat.sendText(alice.uid, "are you there?"))).toBe(ErrorCode.BLOCKED);
    expect(await refused("send", "scalice", alice.password, bob.uid, "hi bob")).toContain("BLOCKED");
    // Blocking again is no error; the history stays readable.
    await cli("block", "scalice", alice.password, bob.uid);
    expect((await cli("history", "scalice", alice.password, convId)).stdout).toContain("hello alice");

    expect((await cli("unblock", "scalice", alice.password, bob.uid)).stdout).toContain(`unblocked ${bob.uid}`);
    expect((await cli("blocked", "scalice", alice.password)).stdout).toContain("nobody blocked");
    // The seq stream resumes where it was: the refused sends used none.
    expect((await bobChat.sendText(alice.uid, "back again")).seq).toBe(2);
    expect(await refused("block", "scalice", alice.password, "not-a-uid")).toContain("not a uid");
  }, 120_000);

  it("reports a user and a message", async () => {
    expect((await cli("report", "scalice", alice.password, bob.uid, "spam", "links")).stdout).toMatch(
      new RegExp(`reported user ${bob.uid} \\(report \\d+\\)`),
    );
    expect((await cli("report", "scalice", alice.password, convId, "1", "rude")).stdout).toMatch(
      new RegExp(`reported #1 in ${convId} \\(report \\d+\\)`),
    );
    // A message of a conversation the reporter is not in is not its to report.
    expect(await refused("report", "sccarol", carol.password, convId, "1", "nosy")).toContain("NOT_PARTICIPANT");
    expect(await refused("report", "scalice", alice.password, bob.uid)).toContain("missing reason");
  }, 120_000);

  it("pins, hides and clears a conversation for one side only", async () => {
    // A second conversation, newer than the first: pinning puts the first above it.
    await carolChat.sendText(alice.uid, "carol writes too");
    const before = (await cli("convs", "scalice", alice.password)).stdout.split("\n");
    expect(before[0]).toMatch(/^p:.*carol writes too$/);
    expect((await cli("pin", "scalice", alice.password, convId)).stdout).toContain(`${convId}: pinned`);
    const pinned = (await cli("convs", "scalice", alice.password)).stdout.split("\n");
    expect(pinned[0]).toContain(`${convId}  [pinned]`);
    expect((await cli("mute", "scalice", alice.password, convId)).stdout).toContain(`${convId}: pinned, muted`);
    expect((await cli("pin", "scalice", alice.password, convId, "off")).stdout).toContain(`${convId}: muted`);

    // Hidden until its next message.
    expect((await cli("hide", "scalice", alice.password, convId)).stdout).toContain("muted, hidden");
    expect((await cli("convs", "scalice", alice.password)).stdout).not.toContain(convId);
    const next = await bobChat.sendText(alice.uid, "wake up");
    // Listed again, and no longer hidden.
    const listed = (await cli("convs", "scalice", alice.password)).stdout;
    expect(listed).toContain(`${convId}  [muted]`);
    expect(listed).not.toContain("hidden");

    // Cleared for alice up to the newest: her history is empty, bob keeps his.
    expect((await cli("clear", "scalice", alice.password, convId)).stdout).toContain(
      `cleared ${convId} up to #${next.seq} for you`,
    );
    expect((await cli("history", "scalice", alice.password, convId)).stdout.trim()).toBe("");
    const kept = (await bobChat.history({ convId })).map((m) => m.text);
    expect(kept).toHaveLength(3);
    expect(kept).toEqual(expect.arrayContaining(["hello alice", "back again", "wake up"]));
    const after = await bobChat.sendText(alice.uid, "after the clear");
    const history = (await cli("history", "scalice", alice.password, convId)).stdout;
    expect(history).toContain(`[${convId} #${after.seq}] scbob (${bob.uid}): after the clear`);
    expect(history).not.toContain("hello alice");
    expect((await cli("convs", "scalice", alice.password)).stdout).toContain(`(from #${next.seq + 1})`);
    expect(await refused("pin", "scalice", alice.password, convId, "maybe")).toContain("expected on or off");
  }, 120_000);

  it("moderates a group: a muted member's post is refused, the announcement reaches the members", async () => {
    const created = await cli("gcreate", "scalice", alice.password, "cli-mods", bob.uid, carol.uid);
    groupId = /created (\d+)/.exec(created.stdout)?.[1] as string;
    expect(groupId, created.stdout).toBeDefined();
    await bobChat.answerGroupInvitation(groupId, true);
    await carolChat.answerGroupInvitation(groupId, true);

    const muted = await cli("gmute", "scalice", alice.password, groupId, carol.uid, "3600");
    expect(muted.stdout).toMatch(new RegExp(`${carol.uid} is muted until \\d{4}-`));
    await until("carol's MEMBER_MUTED", () => carolEvents.some((e) => e.kind === GroupEventKind.MEMBER_MUTED));
    expect(Number(carolEvents.find((e) => e.kind === GroupEventKind.MEMBER_MUTED)?.untilMs)).toBeGreaterThan(
      Date.now(),
    );
    expect(await codeOf(carolChat.sendGroupText(groupId, "let me speak"))).toBe(ErrorCode.GROUP_MUTED);
    expect((await cli("gmembers", "scalice", alice.password, groupId)).stdout).toMatch(
      new RegExp(`${carol.uid}  member  muted until \\d{4}-`),
    );
    // The admin's post goes through.
    expect((await cli("gsend", "scalice", alice.password, groupId, "the", "admin", "speaks")).stdout).toContain(
      `in g:${groupId}`,
    );
    // A member mutes nobody; forever is until unmuted; off unmutes.
    expect(await refused("gmute", "scbob", bob.password, groupId, carol.uid, "60")).toContain(
      "GROUP_PERMISSION_DENIED",
    );
    expect((await cli("gmute", "scalice", alice.password, groupId, carol.uid, "forever")).stdout).toContain(
      "muted until unmuted",
    );
    expect((await cli("gmute", "scalice", alice.password, groupId, carol.uid, "off")).stdout).toContain("unmuted");
    expect((await carolChat.sendGroupText(groupId, "thanks")).seq).toBeGreaterThan(0);

    // Everyone muted: only admins and the owner post.
    expect((await cli("gmuteall", "scalice", alice.password, groupId, "on")).stdout).toContain("only admins post");
    expect(await codeOf(bobChat.sendGroupText(groupId, "me too"))).toBe(ErrorCode.GROUP_MUTED);
    expect((await cli("groups", "scalice", alice.password)).stdout).toContain("only admins post");
    await cli("gmuteall", "scalice", alice.password, groupId, "off");
    expect(await codeOf(bobChat.sendGroupText(groupId, "me too"))).toBe("ok");

    const announced = await cli("announce", "scalice", alice.password, groupId, "Be", "kind,", "please");
    expect(announced.stdout).toContain("announcement: Be kind, please");
    await until("carol's ANNOUNCEMENT", () =>
      carolEvents.some(
        (e) => e.kind === GroupEventKind.ANNOUNCEMENT && e.group?.announcement?.text === "Be kind, please",
      ),
    );
    expect((await cli("groups", "scbob", bob.password)).stdout).toContain("announcement: Be kind, please");
    expect((await cli("gttl", "scalice", alice.password, groupId, "86400")).stdout).toContain("86400s");
    await until("carol's RETENTION", () =>
      carolEvents.some((e) => e.kind === GroupEventKind.RETENTION && e.group?.messageTtlSeconds === 86_400),
    );
  }, 120_000);

  it("join approval: a user asks, the admins are told and admit it", async () => {
    const dave = await s.register("scdave");
    const requests: GroupJoinApplication[] = [];
    const aliceChat = await openChat(await s.gate.login(alice.email, alice.password), "ws");
    clients.push(aliceChat);
    aliceChat.on("groupJoinRequest", (a) => requests.push(a));
    // A group without approval takes no requests: its members invite.
    expect(await refused("gjoin", "scdave", dave.password, groupId)).toContain("INVALID_ARGUMENT");
    expect((await cli("gapproval", "scalice", alice.password, groupId, "on")).stdout).toContain("needs approval");
    expect((await cli("gjoin", "scdave", dave.password, groupId, "let", "me", "in")).stdout).toContain(
      "join request sent",
    );
    await until("alice's join request push", () => requests.length > 0);
    expect(requests[0]).toMatchObject({ groupId, user: { uid: dave.uid, name: "scdave" }, message: "let me in" });
    expect((await cli("grequests", "scalice", alice.password, groupId)).stdout).toContain(
      `${dave.uid}  scdave  let me in`,
    );
    expect((await cli("gadmit", "scalice", alice.password, groupId, dave.uid)).stdout).toContain(
      `admitted ${dave.uid}`,
    );
    expect((await cli("gmembers", "scalice", alice.password, groupId)).stdout).toContain(`${dave.uid}  member`);
    expect((await cli("grequests", "scalice", alice.password, groupId)).stdout).toContain("no join requests");
    await aliceChat.close();
  }, 120_000);

  it("chat mode prints moderation events, join requests and settings changed elsewhere, and takes the commands", async () => {
    const { child, sees } = run.chatMode("scbob", bob.password);
    await sees(`logged in as uid ${bob.uid}`);

    // bob's own settings, changed from his desktop (a one-shot login).
    await cli("pin", "scbob", bob.password, convId);
    await sees(`[${convId}] settings changed on another device: pinned`);
    await cli("clear", "scbob", bob.password, convId, "1");
    await sees(`[${convId}] history cleared up to #1 on another device`);
    // Group moderation by alice.
    await cli("gmute", "scalice", alice.password, groupId, bob.uid, "600");
    await sees(`[group ${groupId} "cli-mods"] ${alice.uid} muted ${bob.uid} until `);
    await cli("gmute", "scalice", alice.password, groupId, bob.uid, "off");
    await sees(`${alice.uid} unmuted ${bob.uid}`);
    await cli("announce", "scalice", alice.password, groupId, "New", "rules");
    await sees(`${alice.uid} set the announcement: New rules`);
    // bob is made an admin: he is told of join requests.
    await cli("gadmin", "scalice", alice.password, groupId, bob.uid);
    await sees(`changed the role of ${bob.uid} to admin`);
    const erin = await s.register("scerin");
    await cli("gjoin", "scerin", erin.password, groupId, "hello");
    await sees(`[join request] scerin (${erin.uid}) asks to join ${groupId}: hello`);
    // Typed commands.
    child.stdin.write(`/gadmit ${groupId} ${erin.uid} decline\n`);
    await sees(`declined ${erin.uid}`);
    child.stdin.write(`/block ${carol.uid}\n`);
    await sees(`blocked ${carol.uid}`);
    expect(await codeOf(carolChat.sendText(bob.uid, "hi bob"))).toBe(ErrorCode.BLOCKED);
    child.stdin.write("/blocked\n");
    await sees(`${carol.uid}  sccarol  since `);
    child.stdin.write(`/unblock ${carol.uid}\n`);
    await sees(`unblocked ${carol.uid}`);
    child.stdin.write("/nonsense\n");
    await sees("/gmute <group id> <uid> <seconds|forever|off>");
    await sees("/block <uid>");
    child.stdin.end();
    await new Promise((resolve) => child.once("exit", resolve));
  }, 120_000);

  it("dissolves the group: nobody posts, the members are told", async () => {
    expect(await refused("dissolve", "scbob", bob.password, groupId)).toContain("GROUP_PERMISSION_DENIED");
    expect((await cli("dissolve", "scalice", alice.password, groupId)).stdout).toContain(`dissolved ${groupId}`);
    await until("carol's DISSOLVED", () => carolEvents.some((e) => e.kind === GroupEventKind.DISSOLVED));
    expect(await codeOf(carolChat.sendGroupText(groupId, "hello?"))).toBe(ErrorCode.GROUP_DISSOLVED);
    expect(await refused("gsend", "scalice", alice.password, groupId, "anyone?")).toContain("GROUP_DISSOLVED");
    expect((await cli("groups", "sccarol", carol.password)).stdout).not.toContain("cli-mods");
    // The history stays readable (GROUP_DISSOLVE_HISTORY=keep).
    expect((await carolChat.history({ convId: `g:${groupId}` })).some((m) => m.text === "the admin speaks")).toBe(true);
  }, 120_000);

  it("deletes an account with its password: the login is gone, the name is free again", async () => {
    const frank = await s.register("scfrank");
    const frankChat = await openChat(await s.gate.login(frank.email, frank.password), "ws");
    clients.push(frankChat);
    const closed = new Promise((resolve) => frankChat.once("close", resolve));
    expect(await refused("delete-account", "scfrank", "not-the-password")).toContain("BAD_CREDENTIALS");
    expect((await cli("delete-account", "scfrank", frank.password)).stdout).toContain(
      `deleted the account of uid ${frank.uid}`,
    );
    await closed;
    expect(await refused("friends", "scfrank", frank.password)).toContain("BAD_CREDENTIALS");
    expect(await bobChat.searchUsers(frank.uid, 1)).toEqual([]);
    // The name registers again, as a new user.
    const again = await s.register("scfrank");
    expect(again.uid).not.toBe(frank.uid);
  }, 120_000);
});

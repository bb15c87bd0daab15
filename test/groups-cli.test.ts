import { type LoginAnswer, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../packages/protocol/src/wire.js";
import type { Services } from "./helpers/services.js";
import { type CliUser, terminalClientRun } from "./helpers/terminal-client.js";
import { until } from "./helpers/waits.js";

/**
 * The terminal client's group commands against every service as its own process (two chat
 * nodes): create, invitations (list, accept, decline), post, list, members, admin, kick, and a
 * member's SDK session receiving the post.
 */
const run = terminalClientRun();
const { cli, clients } = run;
let s: Services;
const users: CliUser[] = [];

beforeAll(async () => {
  users.push(...(await run.start("groups-cli", "gcowner", "gcmember", "gcother")));
  s = run.services;
}, 120_000);

afterAll(() => run.stop());

describe("terminal client group commands", () => {
  it("creates a group, invitees accept or decline, posts, lists it and its members, makes an admin and kicks", async () => {
    const [owner, member, other] = users as [(typeof users)[0], (typeof users)[0], (typeof users)[0]];
    const memberLogin: LoginAnswer = await s.gate.login(member.email, member.password);
    const memberChat = await openChat(memberLogin, "tcp");
    clients.push(memberChat);
    const received: ChatMessage[] = [];
    memberChat.on("message", (m) => received.push(m));

    const created = await cli("gcreate", "gcowner", owner.password, "cli-team", member.uid, other.uid);
    const groupId = /created (\d+)/.exec(created.stdout)?.[1];
    expect(groupId, created.stdout).toBeDefined();
    // Both are asked (GROUP_JOIN_CONSENT's default), and join by accepting.
    expect(created.stdout).toContain("1 members");
    expect(created.stdout).toContain("invited");
    // The member joins from its open SDK session (a CLI login would take that device's place).
    expect((await memberChat.answerGroupInvitation(groupId as string, true))?.memberCount).toBe(2);
    expect((await cli("ginvites", "gcother", other.password)).stdout).toContain(`${groupId}  cli-team`);
    expect((await cli("gdecline", "gcother", other.password, groupId as string)).stdout).toContain("declined");
    expect((await cli("ginvites", "gcother", other.password)).stdout).toContain("no invitations");
    expect((await cli("ginvite", "gcowner", owner.password, groupId as string, other.uid)).stdout).toContain(
      `invited ${other.uid}`,
    );
    expect((await cli("gaccept", "gcother", other.password, groupId as string)).stdout).toContain("3 members");

    const sent = await cli("gsend", "gcowner", owner.password, groupId as string, "hello", "from", "the", "cli");
    expect(sent.stdout).toMatch(new RegExp(`#1 in g:${groupId}`));
    await until("the member's push", () => received.some((m) => m.text === "hello from the cli"));

    expect((await cli("groups", "gcmember", member.password)).stdout).toContain(`${groupId}  cli-team`);
    await cli("gadmin", "gcowner", owner.password, groupId as string, member.uid);
    const members = (await cli("gmembers", "gcowner", owner.password, groupId as string)).stdout;
    expect(members).toContain(`${owner.uid}  owner`);
    expect(members).toContain(`${member.uid}  admin`);
    expect(members).toContain(`${other.uid}  member`);

    expect((await cli("gkick", "gcmember", member.password, groupId as string, other.uid)).stdout).toContain("kicked");
    const refused = await cli("gsend", "gcother", other.password, groupId as string, "still", "here").catch(
      (err: { stderr: string; code: number }) => err,
    );
    expect(refused.stderr).toContain("NOT_GROUP_MEMBER");

    // The owner hands the group over, and may then leave it.
    expect((await cli("gowner", "gcowner", owner.password, groupId as string, member.uid)).stdout).toContain(
      `${member.uid} now owns the group`,
    );
    const after = (await cli("gmembers", "gcmember", member.password, groupId as string)).stdout;
    expect(after).toContain(`${member.uid}  owner`);
    expect(after).toContain(`${owner.uid}  admin`);
    expect((await cli("gleave", "gcowner", owner.password, groupId as string)).stdout).toContain("left");
  }, 120_000);
});

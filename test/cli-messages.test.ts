import { type ChatClient, openChat } from "@shardchat/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatMessage, MessageKind, type TypingPush } from "../packages/protocol/src/wire.js";
import type { Services } from "./helpers/services.js";
import { type CliUser, terminalClientRun } from "./helpers/terminal-client.js";
import { until } from "./helpers/waits.js";

/**
 * The terminal client's message-model commands (issue 16) against every service as its own
 * process (two chat nodes): one-shot reply, react, edit, recall, custom, forward, delete for me,
 * typing and group mentions, seen by an SDK session of the other user; then chat mode printing
 * what that user does (events as one line, quotes, typing) and taking slash commands.
 */
const run = terminalClientRun();
const { cli, refused, clients } = run;
let s: Services;
let alice: CliUser;
let bob: CliUser;
let carol: CliUser;
let bobChat: ChatClient;
const bobGot: ChatMessage[] = [];
const bobTyping: TypingPush[] = [];

/** The last message bob got of this kind (and conversation). */
function bobLatest(kind?: MessageKind, convId?: string): ChatMessage | undefined {
  return bobGot.filter((m) => (kind === undefined || m.kind === kind) && (!convId || m.convId === convId)).at(-1);
}

beforeAll(async () => {
  [alice, bob, carol] = (await run.start("messages-cli", "mcalice", "mcbob", "mccarol")) as [CliUser, CliUser, CliUser];
  s = run.services;
  // bob watches over WebSocket (a web device): the CLI's desktop logins never take its place.
  bobChat = await openChat(await s.gate.login(bob.email, bob.password), "ws");
  clients.push(bobChat);
  bobChat.on("message", (m) => bobGot.push(m));
  bobChat.on("typing", (t) => bobTyping.push(t));
}, 120_000);

afterAll(() => run.stop());

describe("terminal client message commands", () => {
  let convId = "";

  it("reacts, edits, recalls, replies, sends a custom message, deletes for itself and types (one-shot)", async () => {
    const first = await bobChat.sendText(alice.uid, "hello from bob");
    convId = first.convId;
    expect(first.seq).toBe(1);

    const reacted = await cli("react", "mcalice", alice.password, convId, "1", "👍");
    expect(reacted.stdout).toContain(`reacted 👍 (event #2 in ${convId})`);
    await until("bob's reaction event", () => bobLatest(MessageKind.REACTION_EVENT) !== undefined);
    const reaction = bobLatest(MessageKind.REACTION_EVENT);
    expect(reaction?.targetSeq).toBe(1);
    expect(reaction?.reaction).toEqual({ emoji: "👍", add: true });
    expect(reaction?.target?.reactions?.counts).toEqual([{ emoji: "👍", count: 1, me: false }]);

    const sent = await cli("send", "mcalice", alice.password, bob.uid, "a typo hree");
    expect(sent.stdout).toContain(`#3 in ${convId}`);
    const edited = await cli("edit", "mcalice", alice.password, convId, "3", "no typo here");
    expect(edited.stdout).toContain(`edited (event #4 in ${convId})`);
    await until("bob's edit event", () => bobLatest(MessageKind.EDIT_EVENT) !== undefined);
    expect(bobLatest(MessageKind.EDIT_EVENT)?.target).toMatchObject({ seq: 3, text: "no typo here", editCount: 1 });

    const recalled = await cli("recall", "mcalice", alice.password, convId, "3");
    expect(recalled.stdout).toContain(`recalled (event #5 in ${convId})`);
    await until("bob's recall event", () => bobLatest(MessageKind.RECALL_EVENT) !== undefined);
    expect(bobLatest(MessageKind.RECALL_EVENT)?.target).toMatchObject({ seq: 3, recalled: true, text: "" });
    // Nothing is left to react to, and bob's own message is not alice's to edit.
    expect(await refused("react", "mcalice", alice.password, convId, "3", "👍")).toContain("MESSAGE_RECALLED");
    expect(await refused("edit", "mcalice", alice.password, convId, "1", "mine now")).toContain("NOT_MESSAGE_SENDER");

    const replied = await cli("reply", "mcalice", alice.password, bob.uid, "1", "answering", "you");
    expect(replied.stdout).toContain(`#6 in ${convId}`);
    await until("bob's reply", () => bobGot.some((m) => m.text === "answering you"));
    expect(bobGot.find((m) => m.text === "answering you")?.reply).toMatchObject({
      seq: 1,
      sender: bob.uid,
      snippet: "hello from bob",
      recalled: false,
    });

    const payload = '{"lat": 52.52, "lon": 13.405, "label": "<b>not markup</b>"}';
    const custom = await cli("custom", "mcalice", alice.password, bob.uid, "location", payload);
    expect(custom.stdout).toContain(`#7 in ${convId}`);
    await until("bob's custom message", () => bobLatest(MessageKind.CUSTOM) !== undefined);
    expect(bobLatest(MessageKind.CUSTOM)?.custom).toEqual({ type: "location", payloadJson: payload });
    expect(await refused("custom", "mcalice", alice.password, bob.uid, "location", "{not json")).toContain("not JSON");

    // Deleted for alice only: her history shows the place, bob's the message.
    expect((await cli("delete", "mcalice", alice.password, convId, "1")).stdout).toContain("deleted #1 for you");
    const history = (await cli("history", "mcalice", alice.password, convId)).stdout;
    expect(history).toContain(`[${convId} #1] (deleted for you)`);
    expect(history).toContain(`[${convId} #3] mcalice (${alice.uid}): (message recalled)`);
    expect(history).toContain("┌ reply to #1 by mcbob:");
    expect(history).toContain(`[location] ${payload}`);
    // History holds the events too, each as one line.
    expect(history).toContain(`[${convId}] * mcalice reacted 👍 to #1`);
    expect(history).toContain(`[${convId}] * mcalice recalled #3`);
    expect((await bobChat.history({ convId })).find((m) => m.seq === 1)?.text).toBe("hello from bob");

    expect((await cli("typing", "mcalice", alice.password, convId)).stdout).toContain("typing sent");
    await until("bob's typing push", () => bobTyping.some((t) => t.convId === convId && t.uid === alice.uid));
    expect(bobTyping.at(-1)?.expiresInMs).toBeGreaterThan(0);
  }, 120_000);

  it("forwards into a group and mentions members with @<uid> and @everyone", async () => {
    const created = await cli("gcreate", "mcalice", alice.password, "cli-trio", bob.uid, carol.uid);
    const groupId = /created (\d+)/.exec(created.stdout)?.[1] as string;
    expect(groupId, created.stdout).toBeDefined();
    await bobChat.answerGroupInvitation(groupId, true);
    expect((await cli("gaccept", "mccarol", carol.password, groupId)).stdout).toContain("3 members");

    const forwarded = await cli("forward", "mcalice", alice.password, convId, "6", `g:${groupId}`);
    expect(forwarded.stdout).toContain(`forwarded: stored as`);
    expect(forwarded.stdout).toContain(`in g:${groupId}`);
    const forwardIn = () => bobGot.find((m) => m.convId === `g:${groupId}` && m.forwarded);
    await until("the forward in the group", () => forwardIn() !== undefined);
    const copy = forwardIn();
    expect(copy).toMatchObject({ sender: alice.uid, text: "answering you" });
    expect(copy?.forwarded).toMatchObject({ convId, sender: alice.uid });
    // A recalled message is not forwarded.
    expect(await refused("forward", "mcalice", alice.password, convId, "3", bob.uid)).toContain("MESSAGE_RECALLED");

    await cli("gsend", "mcalice", alice.password, groupId, `look @${bob.uid} and @everyone!`);
    await until("the mention", () => bobGot.some((m) => m.text.startsWith("look @")));
    expect(bobGot.find((m) => m.text.startsWith("look @"))?.mentions).toEqual({ uids: [bob.uid], all: true });
    // @everyone is for admins and the owner.
    expect(await refused("gsend", "mccarol", carol.password, groupId, "@everyone hi")).toContain(
      "GROUP_PERMISSION_DENIED",
    );
    const list = await bobChat.conversations();
    expect(list.find((c) => c.convId === `g:${groupId}`)?.mentioned).toBe(true);

    // A group reply with a mention; a group admin's recall of someone else's message.
    const copySeq = copy?.seq ?? 0;
    await cli("reply", "mcalice", alice.password, `g:${groupId}`, String(copySeq), `@${carol.uid}`, "see", "this");
    await until("the group reply", () => bobGot.some((m) => m.text === `@${carol.uid} see this`));
    const groupReply = bobGot.find((m) => m.text === `@${carol.uid} see this`);
    expect(groupReply?.reply?.seq).toBe(copySeq);
    expect(groupReply?.mentions).toEqual({ uids: [carol.uid], all: false });
    const bobPost = await bobChat.sendGroupText(groupId, "bob in the group");
    expect((await cli("recall", "mcalice", alice.password, `g:${groupId}`, String(bobPost.seq))).stdout).toContain(
      "recalled (event",
    );
  }, 120_000);

  it("chat mode prints events as one line, quotes and typing, and takes the slash commands", async () => {
    const { child, sees } = run.chatMode("mcalice", alice.password);
    await sees(`logged in as uid ${alice.uid}`);

    const ping = await bobChat.sendText(alice.uid, "ping from bob");
    await sees(`[${convId} #${ping.seq}] mcbob (${bob.uid}): ping from bob`);
    await bobChat.react(convId, ping.seq, "🎉");
    await sees(`* mcbob reacted 🎉 to #${ping.seq}`);
    await bobChat.edit(convId, ping.seq, "ping, edited");
    await sees(`* mcbob edited #${ping.seq}: ping, edited`);
    const reply = await bobChat.sendMessage({ toUid: alice.uid }, { text: "about that", replyTo: ping.seq });
    await sees(`┌ reply to #${ping.seq} by mcbob: "ping, edited"`);
    await sees(`[${convId} #${reply.seq}] mcbob (${bob.uid}): about that`);
    bobChat.typing(convId);
    await sees("… mcbob is typing");
    await bobChat.react(convId, ping.seq, "🎉", false);
    await sees(`* mcbob removed 🎉 from #${ping.seq}`);
    await bobChat.recall(convId, ping.seq);
    await sees(`* mcbob recalled #${ping.seq}`);

    // Typed commands: a reaction and a reply, which bob's session gets.
    const before = bobGot.length;
    child.stdin.write(`/react ${convId} ${reply.seq} ❤️\n`);
    await until("bob's reaction from chat mode", () =>
      bobGot.slice(before).some((m) => m.kind === MessageKind.REACTION_EVENT && m.reaction?.emoji === "❤️"),
    );
    await sees("reacted ❤️ (event");
    child.stdin.write(`/reply ${bob.uid} ${reply.seq} got it\n`);
    await until("bob's reply from chat mode", () => bobGot.slice(before).some((m) => m.text === "got it"));
    expect(bobGot.find((m) => m.text === "got it")?.reply?.snippet).toBe("about that");
    child.stdin.write("/nonsense\n");
    await sees("/reply <uid|g:group> <seq> <text>");
    child.stdin.end();
    await new Promise((resolve) => child.once("exit", resolve));
  }, 120_000);
});

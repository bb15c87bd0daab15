import type { ChatClient } from "@shardchat/sdk";
import { DeviceKind, type FriendApplication } from "@shardchat/sdk";
import { errorName } from "../errors.js";
import { need, type SessionCommand } from "./command.js";
import { groupUsage } from "./groups.js";
import { messageUsage, printer } from "./messages.js";
import { safetyUsage, settingsText } from "./safety.js";

function showApplication(a: FriendApplication): string {
  return `friend application from ${a.from?.name} (uid ${a.from?.uid}): ${a.message || "(no message)"}`;
}

/**
 * Friends, search and conversation commands of the terminal client. Each runs on a logged-in
 * session, one-shot (`npm run cli -- friends me pw`) or typed in chat mode ("/friends").
 */
export const socialCommands: Record<string, SessionCommand> = {
  search: {
    args: "<uid|email|name prefix>",
    what: "find users (uid and name only)",
    async run(chat, args) {
      const users = await chat.searchUsers(need(args.join(" ") || undefined, "query"));
      for (const u of users) console.log(`${u.uid}  ${u.name}`);
      if (users.length === 0) console.log("no user found");
    },
  },
  apply: {
    args: "<uid> [message]",
    what: "ask someone to be friends",
    async run(chat, [uid, ...message]) {
      await chat.applyFriend(need(uid, "uid"), message.join(" "));
      console.log("application sent");
    },
  },
  applications: {
    args: "",
    what: "friend applications waiting for your answer",
    async run(chat) {
      const pending = await chat.friendApplications();
      for (const a of pending) console.log(showApplication(a));
      if (pending.length === 0) console.log("no pending applications");
    },
  },
  accept: {
    args: "<uid>",
    what: "accept a friend application",
    async run(chat, [uid]) {
      await chat.replyFriend(need(uid, "uid"), true);
      console.log("accepted");
    },
  },
  decline: {
    args: "<uid>",
    what: "decline a friend application",
    async run(chat, [uid]) {
      await chat.replyFriend(need(uid, "uid"), false);
      console.log("declined");
    },
  },
  friends: {
    args: "",
    what: "friends with presence",
    async run(chat) {
      const friends = await chat.friends();
      for (const f of friends) console.log(`${f.user?.uid}  ${f.user?.name}  ${f.online ? "online" : "offline"}`);
      if (friends.length === 0) console.log("no friends yet");
    },
  },
  unfriend: {
    args: "<uid>",
    what: "remove a friend",
    async run(chat, [uid]) {
      await chat.removeFriend(need(uid, "uid"));
      console.log("removed");
    },
  },
  convs: {
    args: "",
    what: "conversations, pinned first, then newest first, with unread counts",
    async run(chat) {
      const list = await chat.conversations();
      for (const c of list) {
        const last = c.lastMessage ? `${c.lastMessage.sender}: ${c.lastMessage.text}` : "";
        const settings = settingsText(c.settings);
        const marks = `${settings === "none" ? "" : `  [${settings}]`}${(c.firstSeq ?? 0) > 1 ? `  (from #${c.firstSeq})` : ""}`;
        console.log(
          `${c.convId}${marks}  unread ${c.unread}  (read ${c.readSeq}/${c.lastSeq}, peer read ${c.peerReadSeq})  ${last}`,
        );
      }
      if (list.length === 0) console.log("no conversations yet");
    },
  },
  read: {
    args: "<convId> <seq>",
    what: "mark a conversation read up to seq (the peer gets a read receipt)",
    async run(chat, [convId, seq]) {
      const readSeq = await chat.markRead(need(convId, "convId"), Number(need(seq, "seq")));
      console.log(`read up to #${readSeq}`);
    },
  },
  history: {
    args: "<convId> [beforeSeq]",
    what: "a page of a conversation, older than beforeSeq (default: the newest)",
    async run(chat, [convId, before]) {
      const page = await chat.history({ convId: need(convId, "convId"), beforeSeq: Number(before ?? 0) });
      const print = printer(chat);
      for (const m of page) await print(m);
    },
  },
};

/** Usage lines: one-shot (`npm run cli -- <command> <login> <password> ...`) or typed in chat mode. */
export function socialUsage(mode: "cli" | "chat"): string {
  return Object.entries(socialCommands)
    .map(([name, c]) => {
      const line = mode === "cli" ? `npm run cli -- ${name} <user|email> <password> ${c.args}` : `/${name} ${c.args}`;
      return `  ${line}`.padEnd(mode === "cli" ? 80 : 40) + c.what;
    })
    .join("\n");
}

/** Prints the pushes of friends and read receipts as they arrive. */
export function printSocialPushes(chat: ChatClient): void {
  chat.on("friendApplication", (a) => console.log(showApplication(a)));
  chat.on("friendReply", (r) =>
    console.log(`${r.user?.name} (uid ${r.user?.uid}) ${r.accepted ? "accepted" : "declined"} your application`),
  );
  chat.on("friendRemoved", (r) => console.log(`uid ${r.uid} removed you from their friends`));
  chat.on("readReceipt", (r) => console.log(`uid ${r.reader} read ${r.convId} up to #${r.seq}`));
  chat.on("presence", (p) => console.log(`friend ${p.uid} is ${p.online ? "online" : "offline"}`));
}

/** Runs a "/command args" line typed in chat mode; false when the line is not one. */
export async function runSlashCommand(chat: ChatClient, line: string): Promise<boolean> {
  const match = /^\/(\w+)\s*(.*)$/.exec(line.trim());
  if (!match) return false;
  const command = socialCommands[match[1] as string];
  if (!command) {
    console.log(
      `commands:\n${socialUsage("chat")}\n${groupUsage("chat")}\n${messageUsage("chat")}\n${safetyUsage("chat")}`,
    );
    return true;
  }
  const args = (match[2] as string).split(/\s+/).filter((a) => a !== "");
  await command.run(chat, args).catch((err: Error & { code?: number }) => {
    console.log(`failed: ${err.code ? `${errorName(err.code)} ` : ""}${err.message}`);
  });
  return true;
}

/** --device desktop|web|mobile (default: the transport's: desktop over TCP, web over WebSocket). */
export function deviceOption(value: string | undefined): DeviceKind {
  switch (value) {
    case undefined:
    case "":
      return DeviceKind.UNSPECIFIED;
    case "desktop":
      return DeviceKind.DESKTOP;
    case "web":
      return DeviceKind.WEB;
    case "mobile":
      return DeviceKind.MOBILE;
    default:
      throw new Error(`--device must be desktop, web or mobile, not ${value}`);
  }
}

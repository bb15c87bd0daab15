import { errorName } from "../errors.js";
import { GroupEventKind, type GroupInfo, GroupRole } from "../gen/shardchat/v1/client.js";
import type { ChatClient } from "../sdk/chat-client.js";
import { need, type SessionCommand } from "./command.js";
import { mentionsOf } from "./messages.js";

function showGroup(g: GroupInfo): string {
  return `${g.groupId}  ${g.name}  (${g.memberCount} members, owner ${g.owner}, conversation ${g.convId})`;
}

const ROLE_NAMES: Record<number, string> = {
  [GroupRole.MEMBER]: "member",
  [GroupRole.ADMIN]: "admin",
  [GroupRole.OWNER]: "owner",
};

const EVENT_TEXT: Partial<Record<GroupEventKind, string>> = {
  [GroupEventKind.CREATED]: "created the group",
  [GroupEventKind.MEMBERS_ADDED]: "added",
  [GroupEventKind.MEMBER_LEFT]: "left",
  [GroupEventKind.MEMBER_KICKED]: "kicked",
  [GroupEventKind.RENAMED]: "renamed the group",
  [GroupEventKind.ROLE_CHANGED]: "changed the role of",
};

/**
 * Group commands of the terminal client, one-shot (`npm run cli -- groups me pw`) or typed in
 * chat mode ("/gsend <group id> hello").
 */
export const groupCommands: Record<string, SessionCommand> = {
  groups: {
    args: "",
    what: "your groups",
    async run(chat) {
      const groups = await chat.listGroups();
      for (const g of groups) console.log(showGroup(g));
      if (groups.length === 0) console.log("no groups");
    },
  },
  gcreate: {
    args: "<name> [uid...]",
    what: "create a group and invite these users",
    async run(chat, [name, ...uids]) {
      const group = await chat.createGroup(need(name, "name"), uids);
      console.log(`created ${showGroup(group)}`);
      if (group.invited.length > 0) console.log(`invited ${group.invited.join(" ")} (they accept with /gaccept)`);
    },
  },
  gsend: {
    args: "<group id> <text>",
    what: "post to a group; @<uid> mentions a member, @everyone all (admins)",
    async run(chat, [groupId, ...text]) {
      const body = need(text.join(" ") || undefined, "text");
      const mentions = mentionsOf(body.split(/\s+/));
      const ack = await chat.sendMessage({ groupId: need(groupId, "group id") }, { text: body, mentions });
      console.log(`stored as ${ack.msgId} (#${ack.seq} in ${ack.convId})`);
    },
  },
  ginvite: {
    args: "<group id> <uid...>",
    what: "invite users (admins and the owner)",
    async run(chat, [groupId, ...uids]) {
      const { added, invited } = await chat.inviteToGroup(need(groupId, "group id"), uids);
      if (added.length > 0) console.log(`added ${added.join(" ")}`);
      if (invited.length > 0) console.log(`invited ${invited.join(" ")}`);
      if (added.length + invited.length === 0) console.log("everyone was a member already");
    },
  },
  ginvites: {
    args: "",
    what: "your open group invitations",
    async run(chat) {
      const { invitations, more } = await chat.groupInvitations();
      for (const i of invitations) {
        console.log(`${i.group ? showGroup(i.group) : "?"}  invited by ${i.inviter?.name ?? "?"} (${i.inviter?.uid})`);
      }
      if (invitations.length === 0) console.log("no invitations");
      if (more) console.log("(more: answer these first)");
    },
  },
  gaccept: {
    args: "<group id>",
    what: "accept an invitation: join the group",
    async run(chat, [groupId]) {
      const group = await chat.answerGroupInvitation(need(groupId, "group id"), true);
      console.log(`joined ${group ? showGroup(group) : groupId}`);
    },
  },
  gdecline: {
    args: "<group id>",
    what: "decline an invitation",
    async run(chat, [groupId]) {
      await chat.answerGroupInvitation(need(groupId, "group id"), false);
      console.log("declined");
    },
  },
  gkick: {
    args: "<group id> <uid>",
    what: "remove a member (admins and the owner)",
    async run(chat, [groupId, uid]) {
      await chat.kickFromGroup(need(groupId, "group id"), need(uid, "uid"));
      console.log("kicked");
    },
  },
  gleave: {
    args: "<group id>",
    what: "leave a group",
    async run(chat, [groupId]) {
      await chat.leaveGroup(need(groupId, "group id"));
      console.log("left");
    },
  },
  grename: {
    args: "<group id> <name>",
    what: "rename a group (admins and the owner)",
    async run(chat, [groupId, ...name]) {
      console.log(`renamed: ${showGroup(await chat.renameGroup(need(groupId, "group id"), name.join(" ")))}`);
    },
  },
  gadmin: {
    args: "<group id> <uid> [off]",
    what: "make a member an admin, or (off) a member again (the owner)",
    async run(chat, [groupId, uid, off]) {
      const role = off === "off" ? GroupRole.MEMBER : GroupRole.ADMIN;
      await chat.setGroupRole(need(groupId, "group id"), need(uid, "uid"), role);
      console.log(`${uid} is now ${ROLE_NAMES[role]}`);
    },
  },
  gowner: {
    args: "<group id> <uid>",
    what: "hand the group to a member; you become an admin (the owner)",
    async run(chat, [groupId, uid]) {
      await chat.transferGroup(need(groupId, "group id"), need(uid, "uid"));
      console.log(`${uid} now owns the group; you are an admin`);
    },
  },
  gmembers: {
    args: "<group id>",
    what: "members with roles (every page)",
    async run(chat, [groupId]) {
      const members = await chat.allGroupMembers(need(groupId, "group id"));
      for (const m of members) console.log(`${m.uid}  ${ROLE_NAMES[m.role] ?? m.role}`);
    },
  },
};

export function groupUsage(mode: "cli" | "chat"): string {
  return Object.entries(groupCommands)
    .map(([name, c]) => {
      const line = mode === "cli" ? `npm run cli -- ${name} <user|email> <password> ${c.args}` : `/${name} ${c.args}`;
      return `  ${line}`.padEnd(mode === "cli" ? 80 : 40) + c.what;
    })
    .join("\n");
}

/** Prints group changes and invitations as they are pushed. */
export function printGroupPushes(chat: ChatClient): void {
  chat.on("groupInvitation", (i) => {
    console.log(
      `[invitation] ${i.inviter?.name ?? "?"} (${i.inviter?.uid}) invites you into ${i.group?.groupId} "${i.group?.name}": /gaccept ${i.group?.groupId} or /gdecline ${i.group?.groupId}`,
    );
  });
  chat.on("groupEvent", (e) => {
    const who = e.uids.length > 0 ? ` ${e.uids.join(" ")}` : "";
    const role = e.kind === GroupEventKind.ROLE_CHANGED ? ` to ${ROLE_NAMES[e.role] ?? e.role}` : "";
    console.log(
      `[group ${e.group?.groupId} "${e.group?.name}"] ${e.actor} ${EVENT_TEXT[e.kind] ?? "changed"}${who}${role}`,
    );
  });
}

/** Runs a "/g... args" line typed in chat mode; false when it is not a group command. */
export async function runGroupSlashCommand(chat: ChatClient, line: string): Promise<boolean> {
  const match = /^\/(\w+)\s*(.*)$/.exec(line.trim());
  const command = match ? groupCommands[match[1] as string] : undefined;
  if (!match || !command) return false;
  const args = (match[2] ?? "").split(/\s+/).filter((a) => a !== "");
  await command.run(chat, args).catch((err: Error & { code?: number }) => {
    console.log(`failed: ${err.code ? `${errorName(err.code)} ` : ""}${err.message}`);
  });
  return true;
}

import type { ChatClient } from "@shardchat/sdk";
import { GroupEventKind, type GroupEventPush, type GroupInfo, GroupRole } from "@shardchat/sdk";
import { errorName } from "../errors.js";
import { need, type SessionCommand } from "./command.js";
import { mentionsOf } from "./messages.js";

function showGroup(g: GroupInfo): string {
  const flags = [
    g.dissolved && "dissolved",
    g.mutedAll && "only admins post",
    g.joinApproval && "joins need approval",
    g.messageTtlSeconds && `messages kept ${g.messageTtlSeconds}s`,
  ].filter(Boolean);
  const announcement = g.announcement?.text ? `\n  announcement: ${g.announcement.text}` : "";
  return `${g.groupId}  ${g.name}  (${g.memberCount} members, owner ${g.owner}, conversation ${g.convId}${flags.map((f) => `, ${f}`).join("")})${announcement}`;
}

/** A mute "until unmuted" ends past this (the server's is 9999-12-31). */
const FOREVER_MS = Date.UTC(9000, 0, 1);

/** "until 2025-01-01T10:00:00.000Z", "until unmuted", or "" for 0 (not muted). */
function untilText(ms: string | undefined): string {
  const until = Number(ms ?? 0);
  if (until <= 0) return "";
  return until >= FOREVER_MS ? "until unmuted" : `until ${new Date(until).toISOString()}`;
}

/** "on" or "off": anything else is refused. */
function onOff(value: string | undefined, what: string): boolean {
  if (value === "on") return true;
  if (value === "off") return false;
  throw new Error(`${what}: expected on or off, not ${value ?? "nothing"}`);
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
  [GroupEventKind.DISSOLVED]: "dissolved the group",
};

/** What a group event says, after its actor: "muted 42 until …", "set the announcement: …". */
function eventText(e: GroupEventPush): string {
  const who = e.uids.length > 0 ? ` ${e.uids.join(" ")}` : "";
  switch (e.kind) {
    case GroupEventKind.MEMBER_MUTED: {
      const until = untilText(e.untilMs);
      return until ? `muted${who} ${until}` : `unmuted${who}`;
    }
    case GroupEventKind.MUTED_ALL:
      return e.group?.mutedAll ? "let only admins post" : "let everyone post again";
    case GroupEventKind.ANNOUNCEMENT:
      return e.group?.announcement?.text
        ? `set the announcement: ${e.group.announcement.text}`
        : "removed the announcement";
    case GroupEventKind.JOIN_APPROVAL:
      return e.group?.joinApproval ? "requires approval to join now" : "lets members invite without approval again";
    case GroupEventKind.RETENTION: {
      const ttl = e.group?.messageTtlSeconds ?? 0;
      return ttl > 0 ? `set messages to be deleted ${ttl}s after sending` : "set messages to the server's retention";
    }
    case GroupEventKind.ROLE_CHANGED:
      return `${EVENT_TEXT[e.kind]}${who} to ${ROLE_NAMES[e.role] ?? e.role}`;
    default:
      return `${EVENT_TEXT[e.kind] ?? "changed"}${who}`;
  }
}

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
    what: "members with roles and mutes (every page)",
    async run(chat, [groupId]) {
      const members = await chat.allGroupMembers(need(groupId, "group id"));
      for (const m of members) {
        const muted = Number(m.mutedUntilMs ?? 0) > Date.now() ? `  muted ${untilText(m.mutedUntilMs)}` : "";
        console.log(`${m.uid}  ${ROLE_NAMES[m.role] ?? m.role}${muted}`);
      }
    },
  },
  // ---- Moderation (issue 17).
  gmute: {
    args: "<group id> <uid> <seconds|forever|off>",
    what: "mute a member for a while, until unmuted, or unmute (admins: members; the owner: admins too)",
    async run(chat, [groupId, uid, length]) {
      const value = need(length, "seconds, forever or off");
      const seconds = value === "forever" ? "forever" : value === "off" ? 0 : Number(value);
      if (seconds !== "forever" && !(Number.isInteger(seconds) && seconds >= 0)) {
        throw new Error(`expected seconds, forever or off, not ${value}`);
      }
      const until = await chat.muteGroupMember(need(groupId, "group id"), need(uid, "uid"), seconds);
      console.log(until > 0 ? `${uid} is muted ${untilText(String(until))}` : `${uid} is unmuted`);
    },
  },
  gmuteall: {
    args: "<group id> on|off",
    what: "let only admins and the owner post (on), or everyone again (off)",
    async run(chat, [groupId, value]) {
      const muted = onOff(value, "gmuteall");
      await chat.muteGroup(need(groupId, "group id"), muted);
      console.log(muted ? "only admins post now" : "everyone posts again");
    },
  },
  announce: {
    args: "<group id> [text]",
    what: "set the group's announcement (no text removes it; admins and the owner)",
    async run(chat, [groupId, ...text]) {
      const group = await chat.announceInGroup(need(groupId, "group id"), text.join(" "));
      console.log(group.announcement?.text ? `announcement: ${group.announcement.text}` : "announcement removed");
    },
  },
  dissolve: {
    args: "<group id>",
    what: "dissolve the group: nobody posts again (the owner)",
    async run(chat, [groupId]) {
      await chat.dissolveGroup(need(groupId, "group id"));
      console.log(`dissolved ${groupId}`);
    },
  },
  gapproval: {
    args: "<group id> on|off",
    what: "new members join only with an admin's approval (on), or not (off)",
    async run(chat, [groupId, value]) {
      const required = onOff(value, "gapproval");
      await chat.setGroupJoinApproval(need(groupId, "group id"), required);
      console.log(required ? "joining needs approval now" : "joining needs no approval now");
    },
  },
  gjoin: {
    args: "<group id> [message]",
    what: "ask to join a group that requires approval; its admins are told",
    async run(chat, [groupId, ...message]) {
      await chat.requestToJoinGroup(need(groupId, "group id"), message.join(" "));
      console.log("join request sent: an admin will answer it");
    },
  },
  grequests: {
    args: "<group id>",
    what: "open join requests, newest first (admins and the owner)",
    async run(chat, [groupId]) {
      const requests = await chat.groupJoinRequests(need(groupId, "group id"));
      for (const r of requests) {
        console.log(`${r.user?.uid}  ${r.user?.name}  ${r.message || "(no message)"}`);
      }
      if (requests.length === 0) console.log("no join requests");
    },
  },
  gadmit: {
    args: "<group id> <uid> [decline]",
    what: "admit a user who asked to join, or decline the request",
    async run(chat, [groupId, uid, decline]) {
      if (decline !== undefined && decline !== "decline") throw new Error(`expected "decline", not ${decline}`);
      const accept = decline === undefined;
      await chat.answerGroupJoin(need(groupId, "group id"), need(uid, "uid"), accept);
      console.log(accept ? `admitted ${uid}` : `declined ${uid}`);
    },
  },
  gttl: {
    args: "<group id> <seconds>",
    what: "delete the group's messages this long after sending (0: the server's setting)",
    async run(chat, [groupId, value]) {
      const seconds = Number(need(value, "seconds"));
      if (!Number.isInteger(seconds) || seconds < 0) throw new Error(`expected seconds, not ${value}`);
      await chat.setGroupRetention(need(groupId, "group id"), seconds);
      console.log(
        seconds > 0 ? `messages are deleted ${seconds}s after sending` : "messages follow the server's retention",
      );
    },
  },
};

export function groupUsage(mode: "cli" | "chat"): string {
  return Object.entries(groupCommands)
    .map(([name, c]) => {
      const line = mode === "cli" ? `npm run cli -- ${name} <user|email> <password> ${c.args}` : `/${name} ${c.args}`;
      // At least one space before the description, however long the line.
      return `${`  ${line}`.padEnd(mode === "cli" ? 79 : 39)} ${c.what}`;
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
    console.log(`[group ${e.group?.groupId} "${e.group?.name}"] ${e.actor} ${eventText(e)}`);
  });
  chat.on("groupJoinRequest", (a) => {
    const note = a.message ? `: ${a.message}` : "";
    console.log(
      `[join request] ${a.user?.name ?? "?"} (${a.user?.uid}) asks to join ${a.groupId}${note}: /gadmit ${a.groupId} ${a.user?.uid} or /gadmit ${a.groupId} ${a.user?.uid} decline`,
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

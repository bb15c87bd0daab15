import type { ChatClient, ConversationSettings } from "@shardchat/sdk";
import { errorName } from "../errors.js";
import { need, type SessionCommand } from "./command.js";

/** "on" (or nothing) or "off": anything else is refused. */
function onOff(value: string | undefined, what: string): boolean {
  if (value === undefined || value === "on") return true;
  if (value === "off") return false;
  throw new Error(`${what}: expected on or off, not ${value}`);
}

function uidOf(value: string | undefined): string {
  const uid = need(value, "uid");
  if (!/^\d+$/.test(uid)) throw new Error(`${uid} is not a uid`);
  return uid;
}

/** "pinned, muted" (or "none") for a conversation's settings. */
export function settingsText(s: ConversationSettings | undefined): string {
  const on = [s?.pinned && "pinned", s?.muted && "muted", s?.hidden && "hidden"].filter(Boolean);
  return on.length > 0 ? on.join(", ") : "none";
}

/**
 * Blocking, reports and the user's own conversation settings (issue 17), one-shot
 * (`npm run cli -- block me pw 42`) or typed in chat mode ("/block 42").
 */
export const safetyCommands: Record<string, SessionCommand> = {
  block: {
    args: "<uid>",
    what: "block a user: neither of you can message the other (a friendship ends)",
    async run(chat, [uid]) {
      await chat.block(uidOf(uid));
      console.log(`blocked ${uid}`);
    },
  },
  unblock: {
    args: "<uid>",
    what: "end your block of a user",
    async run(chat, [uid]) {
      await chat.unblock(uidOf(uid));
      console.log(`unblocked ${uid}`);
    },
  },
  blocked: {
    args: "",
    what: "the users you blocked, the most recent first",
    async run(chat) {
      const list = await chat.blockList();
      for (const b of list) {
        console.log(
          `${b.user?.uid}  ${b.user?.name || "(deleted user)"}  since ${new Date(Number(b.sinceMs)).toISOString()}`,
        );
      }
      if (list.length === 0) console.log("nobody blocked");
    },
  },
  report: {
    args: "<uid | convId seq> <reason>",
    what: "report a user, or message #seq of a conversation, to the operators",
    async run(chat, [first, ...rest]) {
      const target = need(first, "uid or convId");
      if (/^\d+$/.test(target)) {
        const id = await chat.report({ uid: target }, need(rest.join(" ") || undefined, "reason"));
        console.log(`reported user ${target} (report ${id})`);
        return;
      }
      const [seqText, ...reason] = rest;
      const seq = Number(need(seqText, "seq"));
      if (!Number.isInteger(seq) || seq < 1) throw new Error(`seq must be a message number (#), not ${seqText}`);
      const id = await chat.report({ convId: target, seq }, need(reason.join(" ") || undefined, "reason"));
      console.log(`reported #${seq} in ${target} (report ${id})`);
    },
  },
  pin: {
    args: "<convId> [off]",
    what: "pin a conversation (listed first), or unpin it",
    async run(chat, [convId, off]) {
      const s = await chat.conversationSettings(need(convId, "convId"), { pinned: onOff(off, "pin") });
      console.log(`${convId}: ${settingsText(s)}`);
    },
  },
  mute: {
    args: "<convId> [off]",
    what: "mute a conversation (no notifications), or unmute it",
    async run(chat, [convId, off]) {
      const s = await chat.conversationSettings(need(convId, "convId"), { muted: onOff(off, "mute") });
      console.log(`${convId}: ${settingsText(s)}`);
    },
  },
  hide: {
    args: "<convId> [off]",
    what: "hide a conversation from your list until its next message (off: show it now)",
    async run(chat, [convId, off]) {
      const s = await chat.conversationSettings(need(convId, "convId"), { hidden: onOff(off, "hide") });
      console.log(`${convId}: ${settingsText(s)}`);
    },
  },
  clear: {
    args: "<convId> [seq]",
    what: "clear a conversation's history for you, up to #seq (default: the newest)",
    async run(chat, [convId, seqText]) {
      const seq = seqText === undefined ? 0 : Number(seqText);
      if (!Number.isInteger(seq) || seq < 0) throw new Error(`seq must be a message number (#), not ${seqText}`);
      const cleared = await chat.clearHistory(need(convId, "convId"), seq);
      console.log(`cleared ${convId} up to #${cleared} for you`);
    },
  },
};

export function safetyUsage(mode: "cli" | "chat"): string {
  return Object.entries(safetyCommands)
    .map(([name, c]) => {
      const line = mode === "cli" ? `npm run cli -- ${name} <user|email> <password> ${c.args}` : `/${name} ${c.args}`;
      // At least one space before the description, however long the line.
      return `${`  ${line}`.padEnd(mode === "cli" ? 79 : 39)} ${c.what}`;
    })
    .join("\n");
}

/** Prints the changes to this user's conversation settings made on its other devices. */
export function printSafetyPushes(chat: ChatClient): void {
  chat.on("conversationSettings", (p) => {
    if (p.settings) console.log(`[${p.convId}] settings changed on another device: ${settingsText(p.settings)}`);
    if (p.clearedSeq > 0) console.log(`[${p.convId}] history cleared up to #${p.clearedSeq} on another device`);
  });
}

/** Runs a "/block ..." (etc.) line typed in chat mode; false when it is not one of these commands. */
export async function runSafetySlashCommand(chat: ChatClient, line: string): Promise<boolean> {
  const match = /^\/(\w+)\s*(.*)$/.exec(line.trim());
  const command = match ? safetyCommands[match[1] as string] : undefined;
  if (!match || !command) return false;
  const args = (match[2] ?? "").split(/\s+/).filter((a) => a !== "");
  await command.run(chat, args).catch((err: Error & { code?: number }) => {
    console.log(`failed: ${err.code ? `${errorName(err.code)} ` : ""}${err.message}`);
  });
  return true;
}

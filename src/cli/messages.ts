import type { ChatClient } from "@shardchat/sdk";
import { type ChatMessage, isMessageEvent, MessageKind, type SendMessageResponse } from "@shardchat/sdk";
import { errorName } from "../errors.js";
import { need, type SessionCommand } from "./command.js";

/** Where a message goes: "<uid>" (a 1:1 conversation) or "g:<group id>". */
export function destination(value: string | undefined): { toUid: string } | { groupId: string } {
  const v = need(value, "uid or g:<group id>");
  const group = /^g:(\d+)$/.exec(v)?.[1];
  if (group) return { groupId: group };
  if (/^\d+$/.test(v)) return { toUid: v };
  throw new Error(`${v} is neither a uid nor g:<group id>`);
}

function seqOf(value: string | undefined): number {
  const seq = Number(need(value, "seq"));
  if (!Number.isInteger(seq) || seq < 1) throw new Error(`seq must be a message number (#), not ${value}`);
  return seq;
}

/** The mentions of a group post's words: "@<uid>" tokens and "@everyone" (admins and the owner). */
export function mentionsOf(words: string[]): { uids: string[]; all: boolean } | undefined {
  const uids = new Set<string>();
  let all = false;
  for (const word of words) {
    const token = /^@(\d+|everyone)[.,!?;:]*$/.exec(word)?.[1];
    if (token === "everyone") all = true;
    else if (token) uids.add(token);
  }
  return uids.size > 0 || all ? { uids: [...uids], all } : undefined;
}

function stored(ack: SendMessageResponse): string {
  return `stored as ${ack.msgId} (#${ack.seq} in ${ack.convId})`;
}

/** What a change answered: the event's place, or that nothing changed. */
function changed(what: string, reply: { event?: ChatMessage | undefined }): string {
  return reply.event ? `${what} (event #${reply.event.seq} in ${reply.event.convId})` : `${what}: nothing changed`;
}

/**
 * The message model's commands (issue 16): replies, reactions, edits, recalls, delete for me,
 * forwards, custom messages and typing, one-shot (`npm run cli -- react me pw p:1:2 4 👍`) or
 * typed in chat mode ("/react p:1:2 4 👍").
 */
export const messageCommands: Record<string, SessionCommand> = {
  reply: {
    args: "<uid|g:group> <seq> <text>",
    what: "reply to (quote) message #seq of that conversation; @<uid> mentions in a group",
    async run(chat, [to, seq, ...text]) {
      const target = destination(to);
      const body = need(text.join(" ") || undefined, "text");
      const mentions = "groupId" in target ? mentionsOf(body.split(/\s+/)) : undefined;
      console.log(stored(await chat.sendMessage(target, { text: body, replyTo: seqOf(seq), mentions })));
    },
  },
  react: {
    args: "<convId> <seq> <emoji> [remove]",
    what: "add (or remove) your reaction on message #seq",
    async run(chat, [convId, seq, emoji, remove]) {
      if (remove !== undefined && remove !== "remove") throw new Error(`expected "remove", not ${remove}`);
      const add = remove === undefined;
      const reply = await chat.react(need(convId, "convId"), seqOf(seq), need(emoji, "emoji"), add);
      console.log(changed(add ? `reacted ${emoji}` : `removed ${emoji}`, reply));
    },
  },
  edit: {
    args: "<convId> <seq> <text>",
    what: "replace the text of your message #seq (within the edit window)",
    async run(chat, [convId, seq, ...text]) {
      const body = need(text.join(" ") || undefined, "text");
      console.log(changed("edited", await chat.edit(need(convId, "convId"), seqOf(seq), body)));
    },
  },
  recall: {
    args: "<convId> <seq>",
    what: "recall message #seq for everyone (yours in the window; any one as a group admin)",
    async run(chat, [convId, seq]) {
      console.log(changed("recalled", await chat.recall(need(convId, "convId"), seqOf(seq))));
    },
  },
  delete: {
    args: "<convId> <seq...>",
    what: "delete messages for yourself (on all your devices; the others keep them)",
    async run(chat, [convId, ...seqs]) {
      const list = seqs.map(seqOf);
      if (list.length === 0) throw new Error("missing seq");
      await chat.deleteForMe(need(convId, "convId"), list);
      console.log(`deleted ${list.map((s) => `#${s}`).join(" ")} for you`);
    },
  },
  forward: {
    args: "<convId> <seq> <uid|g:group>",
    what: "copy message #seq into another conversation as yours",
    async run(chat, [convId, seq, to]) {
      const ack = await chat.forward({ convId: need(convId, "convId"), seq: seqOf(seq) }, destination(to));
      console.log(`forwarded: ${stored(ack)}`);
    },
  },
  custom: {
    args: "<uid|g:group> <type> <json>",
    what: "send an app's own message: a type name and a JSON payload",
    async run(chat, [to, type, ...json]) {
      const target = destination(to);
      const payloadJson = need(json.join(" ") || undefined, "json");
      try {
        JSON.parse(payloadJson);
      } catch {
        throw new Error(`not JSON: ${payloadJson}`);
      }
      console.log(stored(await chat.sendMessage(target, { custom: { type: need(type, "type"), payloadJson } })));
    },
  },
  typing: {
    args: "<convId>",
    what: "tell the conversation you are typing (shown for a few seconds)",
    async run(chat, [convId]) {
      chat.typing(need(convId, "convId"));
      // Not answered: a heartbeat behind it says the node has read it.
      await chat.heartbeat();
      console.log("typing sent");
    },
  },
};

export function messageUsage(mode: "cli" | "chat"): string {
  return Object.entries(messageCommands)
    .map(([name, c]) => {
      const line = mode === "cli" ? `npm run cli -- ${name} <user|email> <password> ${c.args}` : `/${name} ${c.args}`;
      return `  ${line}`.padEnd(mode === "cli" ? 80 : 40) + c.what;
    })
    .join("\n");
}

/** Users' names by uid, asked of the node once each (search by exact uid); the uid when unknown. */
export class Names {
  private readonly known = new Map<string, Promise<string>>();

  constructor(private readonly chat: ChatClient) {}

  of(uid: string): Promise<string> {
    let name = this.known.get(uid);
    if (!name) {
      name = this.chat
        .searchUsers(uid, 1)
        .then((users) => users.find((u) => u.uid === uid)?.name ?? uid)
        .catch(() => uid);
      this.known.set(uid, name);
    }
    return name;
  }
}

function quoteOf(m: ChatMessage): string {
  const r = m.reply;
  if (!r) return "";
  return r.recalled ? `(recalled message)` : `"${r.snippet}"`;
}

/** One message as a line (or two, with a quote): events as "* alice edited #4: new text". */
export async function describe(names: Names, m: ChatMessage): Promise<string> {
  const who = await names.of(m.sender);
  const where = `[${m.convId} #${m.seq}]`;
  if (isMessageEvent(m)) {
    const at = `#${m.targetSeq ?? m.target?.seq ?? "?"}`;
    const prefix = `[${m.convId}] * ${who}`;
    if (m.kind === MessageKind.RECALL_EVENT) return `${prefix} recalled ${at}`;
    if (m.kind === MessageKind.EDIT_EVENT) {
      // The target as it is now: recalled since, its text is gone.
      return m.target?.recalled
        ? `${prefix} edited ${at} (since recalled)`
        : `${prefix} edited ${at}: ${m.target?.text ?? ""}`;
    }
    const r = m.reaction;
    return r?.add === false
      ? `${prefix} removed ${r.emoji} from ${at}`
      : `${prefix} reacted ${r?.emoji ?? "?"} to ${at}`;
  }
  if (m.deletedForMe) return `${where} (deleted for you)`;
  const lines: string[] = [];
  if (m.reply) lines.push(`  ┌ reply to #${m.reply.seq} by ${await names.of(m.reply.sender)}: ${quoteOf(m)}`);
  let body: string;
  if (m.recalled) body = "(message recalled)";
  else if (m.kind === MessageKind.CUSTOM && m.custom) body = `[${m.custom.type}] ${m.custom.payloadJson}`;
  else {
    const file = m.file ? ` [file ${m.file.id}: ${m.file.name}, ${m.file.size} bytes, ${m.file.contentType}]` : "";
    body = `${m.text}${file}`;
  }
  const forwarded = m.forwarded ? `(forwarded from ${await names.of(m.forwarded.sender)}) ` : "";
  const edited = m.editCount ? ` (edited${m.editCount > 1 ? ` ×${m.editCount}` : ""})` : "";
  const reactions = (m.reactions?.counts ?? [])
    .filter((c) => c.count > 0)
    .map((c) => `${c.emoji}${c.count}`)
    .join(" ");
  const mentions = m.mentions
    ? ` (mentions ${[...(m.mentions.all ? ["everyone"] : []), ...m.mentions.uids].join(" ")})`
    : "";
  lines.push(
    `${where} ${who} (${m.sender}): ${forwarded}${body}${edited}${mentions}${reactions ? `  ${reactions}` : ""}`,
  );
  return lines.join("\n");
}

/**
 * Prints messages in the order given though names are looked up: each line waits for the one
 * before it.
 */
export function printer(chat: ChatClient): (m: ChatMessage) => Promise<void> {
  const names = new Names(chat);
  let queue: Promise<void> = Promise.resolve();
  return (m) => {
    const text = describe(names, m);
    queue = queue.then(async () => console.log(await text));
    return queue;
  };
}

/** Prints typing and delete-for-me pushes as they arrive. */
export function printMessagePushes(chat: ChatClient): void {
  const names = new Names(chat);
  chat.on("typing", (t) => {
    void names.of(t.uid).then((name) => console.log(`[${t.convId}] … ${name} is typing`));
  });
  chat.on("deletedForMe", (d) =>
    console.log(`[${d.convId}] you deleted ${d.seqs.map((s) => `#${s}`).join(" ")} for yourself on another device`),
  );
}

/** Runs a "/reply ..." (etc.) line typed in chat mode; false when it is not a message command. */
export async function runMessageSlashCommand(chat: ChatClient, line: string): Promise<boolean> {
  const match = /^\/(\w+)\s*(.*)$/.exec(line.trim());
  const command = match ? messageCommands[match[1] as string] : undefined;
  if (!match || !command) return false;
  const args = (match[2] ?? "").split(/\s+/).filter((a) => a !== "");
  await command.run(chat, args).catch((err: Error & { code?: number }) => {
    console.log(`failed: ${err.code ? `${errorName(err.code)} ` : ""}${err.message}`);
  });
  return true;
}

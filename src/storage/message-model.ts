import type { MessageExtras, StoredMessage, StoredReactionCount, StoredReply, Uid } from "./ports.js";
import { isEventKind, STORED_KIND } from "./ports.js";

/**
 * The message model's storage side (issue 16), shared by every backend: how a message's extras
 * and state sit in their columns, and how a page read from storage is completed for its reader
 * (the quoted message's snippet, an event's target, the reader's own reactions, what the reader
 * deleted for itself). Each backend answers the few lookups; the rules live here once.
 */

/** How much of a quoted message a reply carries, in characters. */
export const REPLY_SNIPPET_CHARS = 80;

/** The columns a message's extras and state are stored in (beside the base columns). */
export interface ModelColumns {
  extras_json?: string | null;
  edit_count?: number | string | null;
  edited_at?: number | string | null;
  recalled?: number | string | null;
  reactions_json?: string | null;
}

/** extras_json of a new message: null for a plain one (the common case costs one NULL). */
export function extrasToColumn(extras: MessageExtras | undefined): string | null {
  if (!extras) return null;
  const stored: Record<string, unknown> = {};
  if (extras.custom) stored.custom = { type: extras.custom.type, payloadJson: extras.custom.payloadJson };
  // The quote itself is not stored: its snippet is read from the quoted message on every read,
  // so an edit shows and a recall erases it there too.
  if (extras.reply) {
    const { seq, msgId, sender, kind } = extras.reply;
    stored.reply = { seq, msgId, sender, kind };
  }
  if (extras.mentions && (extras.mentions.all || extras.mentions.uids.length > 0)) {
    stored.mentions = { uids: extras.mentions.uids, all: extras.mentions.all };
  }
  if (extras.forwarded) stored.forwarded = extras.forwarded;
  if (extras.targetSeq) stored.targetSeq = extras.targetSeq;
  if (extras.reaction) stored.reaction = extras.reaction;
  return Object.keys(stored).length > 0 ? JSON.stringify(stored) : null;
}

/** A stored row's model columns onto its message (the base fields are the backend's). */
export function withModelColumns(message: StoredMessage, row: ModelColumns): StoredMessage {
  if (typeof row.extras_json === "string" && row.extras_json !== "") {
    const extras = JSON.parse(row.extras_json) as MessageExtras;
    if (extras.custom) message.custom = extras.custom;
    if (extras.reply) message.reply = { ...extras.reply, snippet: "", recalled: false };
    if (extras.mentions) message.mentions = extras.mentions;
    if (extras.forwarded) message.forwarded = extras.forwarded;
    if (extras.targetSeq) message.targetSeq = extras.targetSeq;
    if (extras.reaction) message.reaction = extras.reaction;
  }
  const edits = Number(row.edit_count ?? 0);
  if (edits > 0) {
    message.editCount = edits;
    message.editedAtMs = String(row.edited_at ?? 0);
  }
  if (Number(row.recalled ?? 0) === 1) message.recalled = true;
  const counts = reactionsFromColumn(row.reactions_json);
  if (counts.length > 0) message.reactions = { counts };
  return message;
}

/** Counts by emoji, in the order the emojis were first used. */
export function reactionsToColumn(counts: { emoji: string; count: number }[]): string | null {
  const kept = counts.filter((c) => c.count > 0);
  return kept.length > 0 ? JSON.stringify(kept.map((c) => [c.emoji, c.count])) : null;
}

function reactionsFromColumn(value: unknown): StoredReactionCount[] {
  if (typeof value !== "string" || value === "") return [];
  return (JSON.parse(value) as [string, number][]).map(([emoji, count]) => ({ emoji, count, me: false }));
}

/** What a recall leaves of a message's stored content: nothing but its place, kind and ids. */
export function recalledExtras(extras: MessageExtras): string | null {
  // The quote and forward origin are references, not content; the custom payload is content.
  return extrasToColumn({ reply: extras.reply, forwarded: extras.forwarded, mentions: extras.mentions });
}

/** The part of a message a reply shows: its text, else its file's name, else its custom type. */
export function snippetOf(m: StoredMessage): string {
  const source = m.text || m.file?.name || m.custom?.type || "";
  const chars = [...source];
  return chars.length > REPLY_SNIPPET_CHARS ? `${chars.slice(0, REPLY_SNIPPET_CHARS).join("")}…` : source;
}

/** The quote a reply carries, from the quoted message as it is now. */
export function replyOf(quoted: StoredMessage): StoredReply {
  return {
    seq: quoted.seq,
    msgId: quoted.msgId,
    sender: quoted.sender,
    kind: quoted.kind,
    snippet: quoted.recalled ? "" : snippetOf(quoted),
    recalled: quoted.recalled === true,
  };
}

/** A message the reader deleted for itself: its place in the conversation, without content. */
function deletedForReader(m: StoredMessage): StoredMessage {
  return {
    convId: m.convId,
    msgId: m.msgId,
    seq: m.seq,
    sender: m.sender,
    recipient: m.recipient,
    clientMsgId: m.clientMsgId,
    kind: m.kind,
    text: "",
    sentAtMs: m.sentAtMs,
    targetSeq: m.targetSeq,
    deletedForMe: true,
  };
}

/** What a backend answers for completing a page of one conversation. */
export interface ModelLookups {
  /** Messages of the conversation by seq, with their model columns (not completed). */
  bySeqs(convId: string, seqs: number[]): Promise<StoredMessage[]>;
  /** The emojis the reader reacted with on these messages. */
  reactionsOf(convId: string, uid: Uid, seqs: number[]): Promise<{ seq: number; emoji: string }[]>;
  /** Which of these seqs the reader deleted for itself. */
  hiddenOf(convId: string, uid: Uid, seqs: number[]): Promise<number[]>;
}

/**
 * Completes messages read for `uid` (a history page, a sync, one message): each reply gets its
 * quote, each event its target as it is now, reactions their `me`, and what the reader deleted
 * for itself loses its content. `hasHidden(convId)` says whether the reader deleted anything in
 * that conversation (hidden_count > 0 on its member row), so the common page costs no lookup
 * at all: plain messages ask nothing.
 */
export async function completeForReader(
  uid: Uid,
  messages: StoredMessage[],
  lookups: ModelLookups,
  hasHidden: (convId: string) => boolean,
): Promise<StoredMessage[]> {
  const byConv = new Map<string, StoredMessage[]>();
  for (const m of messages) {
    const list = byConv.get(m.convId);
    if (list) list.push(m);
    else byConv.set(m.convId, [m]);
  }
  const done = new Map<StoredMessage, StoredMessage>();
  for (const [convId, page] of byConv) {
    // The common page: plain messages, nothing deleted by the reader. Answered as read.
    if (!hasHidden(convId) && page.every((m) => !m.reply && !m.reactions && !isEventKind(m.kind))) continue;
    const referenced = new Set<number>();
    for (const m of page) {
      if (m.reply) referenced.add(m.reply.seq);
      if (m.targetSeq && isEventKind(m.kind)) referenced.add(m.targetSeq);
    }
    const known = new Map(page.map((m) => [m.seq, m]));
    const load = async (seqs: Iterable<number>) => {
      const missing = [...new Set(seqs)].filter((seq) => !known.has(seq));
      if (missing.length > 0) for (const m of await lookups.bySeqs(convId, missing)) known.set(m.seq, m);
    };
    await load(referenced);
    // An event's target may itself be a reply: its quote is shown with it, as on a push.
    const targets = page.map((m) => (m.targetSeq && isEventKind(m.kind) ? known.get(m.targetSeq) : undefined));
    await load(targets.flatMap((t) => (t?.reply ? [t.reply.seq] : [])));
    const reacted = [...known.values()].filter((m) => m.reactions && m.reactions.counts.length > 0);
    const mine = new Set<string>();
    if (reacted.length > 0) {
      const seqs = reacted.map((m) => m.seq);
      for (const r of await lookups.reactionsOf(convId, uid, seqs)) mine.add(`${r.seq} ${r.emoji}`);
    }
    const hidden = new Set(hasHidden(convId) ? await lookups.hiddenOf(convId, uid, [...known.keys()]) : []);
    const view = (m: StoredMessage): StoredMessage => {
      if (hidden.has(m.seq)) return deletedForReader(m);
      const reactions = m.reactions && {
        counts: m.reactions.counts.map((c) => ({ ...c, me: mine.has(`${m.seq} ${c.emoji}`) })),
      };
      const quoted = m.reply && known.get(m.reply.seq);
      const reply = m.reply && (quoted ? (hidden.has(quoted.seq) ? { ...m.reply } : replyOf(quoted)) : m.reply);
      return { ...m, reactions, reply };
    };
    for (const m of page) {
      const completed = view(m);
      const target = m.targetSeq && isEventKind(m.kind) ? known.get(m.targetSeq) : undefined;
      if (target) completed.target = view(target);
      done.set(m, completed);
    }
  }
  return messages.map((m) => done.get(m) ?? m);
}

/** Whether a message holds content a change may act on (not an event). */
export function isContent(m: StoredMessage): boolean {
  return !isEventKind(m.kind);
}

export { STORED_KIND };

import { type ChatMessage, MessageKind } from "@shardchat/protocol/wire";

/**
 * How a client applies the message model's events. A recall, an edit or a reaction is a
 * message of its own (MESSAGE_KIND_*_EVENT) in the conversation's seq stream: it arrives by
 * push or sync like any message, is acked like one, and is not shown as a bubble. Its `target`
 * is the changed message as it is now, which replaces the client's copy.
 */

/** Whether a message is an event (a change to another message) rather than content to show. */
export function isMessageEvent(message: Pick<ChatMessage, "kind">): boolean {
  return (
    message.kind === MessageKind.RECALL_EVENT ||
    message.kind === MessageKind.EDIT_EVENT ||
    message.kind === MessageKind.REACTION_EVENT
  );
}

/**
 * The message an event leaves, given the copy the client holds (if any): the event's target,
 * with the reader's own reaction marks kept from its copy (a push is encoded once for everyone,
 * so its target's `me` flags are false) and moved by the reader's own reaction events.
 * Undefined for a message that is not an event or carries no target.
 */
export function applyMessageEvent(
  held: ChatMessage | undefined,
  event: ChatMessage,
  self: string,
): ChatMessage | undefined {
  if (!isMessageEvent(event) || !event.target) return undefined;
  const target = event.target;
  const mine = new Set((held?.reactions?.counts ?? []).filter((c) => c.me).map((c) => c.emoji));
  for (const c of target.reactions?.counts ?? []) if (c.me) mine.add(c.emoji);
  if (event.kind === MessageKind.REACTION_EVENT && event.sender === self && event.reaction) {
    if (event.reaction.add) mine.add(event.reaction.emoji);
    else mine.delete(event.reaction.emoji);
  }
  const counts = (target.reactions?.counts ?? []).map((c) => ({ ...c, me: mine.has(c.emoji) }));
  return {
    ...target,
    reactions: counts.length > 0 ? { counts } : undefined,
    deletedForMe: held?.deletedForMe || target.deletedForMe,
  };
}

import type { OutboxEvent } from "../storage/ports.js";

/** The event a bot's webhook gets for each message it should see (README "Bots"). */
export const BOT_MESSAGE_EVENT = "bot.message";

/** What the dispatcher notes in a row's deliveredTo once a bot took it (URLs are noted as themselves). */
export function botDeliveryMark(uid: string): string {
  return `bot:${uid}`;
}

/**
 * A bot's event id: the message's after-send id ("msg_<convId>_<seq>") made the bot's own, so it
 * is the same on every attempt and every dispatcher, and differs between two bots of a group
 * that share a URL.
 */
export function botEventId(uid: string, afterSendId: string): string {
  return `bot_${uid}_${afterSendId.replace(/^msg_/, "")}`;
}

/**
 * The JSON a bot's webhook receives: `data` is the bot's uid and the message as the
 * message.after_send event carries it (the row's payload, used as it is stored).
 */
export function botEventBody(uid: string, row: Pick<OutboxEvent, "eventId" | "createdAt" | "payloadJson">): string {
  return `{"type":${JSON.stringify(BOT_MESSAGE_EVENT)},"id":${JSON.stringify(botEventId(uid, row.eventId))},"timestamp":${JSON.stringify(
    new Date(row.createdAt).toISOString(),
  )},"data":{"bot":${JSON.stringify(uid)},"message":${row.payloadJson}}}`;
}

/** The sender of an after-send row's message (its payload's `sender`), "" when unreadable. */
export function senderOf(payloadJson: string): string {
  try {
    const sender = (JSON.parse(payloadJson) as { sender?: unknown }).sender;
    return typeof sender === "string" ? sender : "";
  } catch {
    return "";
  }
}

import { groupIdOfConv } from "../ids/identifiers.js";
import type { MessageEffect, OutboxEvent, OutboxKey, StoredMessage } from "./ports.js";

/**
 * The webhook outbox's storage side (issue 18), shared by every backend: the after-send row a
 * message store writes in the message's own transaction, and how a row's columns read back.
 * The delivery itself (signing, retries, order) is src/webhooks'.
 */

/** The event a stored message records (the name receivers subscribe to). */
export const AFTER_SEND_EVENT = "message.after_send";

/** A conversation's after-send rows (pos = seq), and every other event of a key (pos = snowflake). */
export const OUTBOX_LANE = { messages: 0, events: 1 } as const;

/** What every insert writes, in this order (outboxValues). */
export const OUTBOX_COLUMNS = "place_key, lane, pos, event_id, event_type, payload_json, created_at";

/** A row about to be inserted. */
export type OutboxInsert = Pick<
  OutboxEvent,
  "placeKey" | "lane" | "pos" | "eventId" | "type" | "payloadJson" | "createdAt"
>;

const KIND_NAMES: Record<number, string> = {
  1: "text",
  2: "custom",
  30: "file",
  31: "audio",
  50: "recall",
  51: "edit",
  52: "reaction",
};

/** A message kind as webhooks name it: text, custom, file, audio, or a change: recall, edit, reaction (else its number). */
export function messageKindName(kind: number): string {
  return KIND_NAMES[kind] ?? String(kind);
}

/**
 * The after-send event's id: the conversation and the seq, so the same message is the same id
 * on every attempt (and on every dispatcher), and a receiver drops a repeat by it.
 */
export function afterSendEventId(convId: string, seq: number): string {
  return `msg_${convId}_${seq}`;
}

/**
 * A stored message as the after-send event's `data`: what a receiver needs to act on it
 * (README "Webhooks"). Custom content is sent as the JSON it is, not as a string of it.
 */
export function messageEventData(m: StoredMessage): Record<string, unknown> {
  const groupId = groupIdOfConv(m.convId);
  const data: Record<string, unknown> = {
    convId: m.convId,
    seq: m.seq,
    msgId: m.msgId,
    sender: m.sender,
    ...(groupId !== undefined ? { groupId } : { recipient: m.recipient }),
    clientMsgId: m.clientMsgId,
    kind: messageKindName(m.kind),
    text: m.text,
    sentAtMs: Number(m.sentAtMs),
  };
  if (m.file)
    data.file = { id: m.file.id, name: m.file.name, size: Number(m.file.size), contentType: m.file.contentType };
  if (m.custom) data.custom = { type: m.custom.type, payload: parsedOrText(m.custom.payloadJson) };
  if (m.reply) data.replyTo = { seq: m.reply.seq, msgId: m.reply.msgId, sender: m.reply.sender };
  if (m.mentions) data.mentions = { uids: m.mentions.uids, all: m.mentions.all };
  if (m.forwarded)
    data.forwarded = { convId: m.forwarded.convId, msgId: m.forwarded.msgId, sender: m.forwarded.sender };
  // A change's event: the message it changed, and a reaction's change.
  if (m.targetSeq) data.targetSeq = m.targetSeq;
  if (m.reaction) data.reaction = { emoji: m.reaction.emoji, add: m.reaction.add };
  return data;
}

function parsedOrText(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}

/** The after-send row of a message just stored (in the transaction that stores it). */
export function afterSendRow(m: StoredMessage, createdAt: number): OutboxInsert {
  return {
    placeKey: m.convId,
    lane: OUTBOX_LANE.messages,
    pos: String(m.seq),
    eventId: afterSendEventId(m.convId, m.seq),
    type: AFTER_SEND_EVENT,
    payloadJson: JSON.stringify(messageEventData(m)),
    createdAt,
  };
}

/**
 * The after-send row of a change's event (recall, edit, reaction: stored with the conversation's
 * next seq, so it is in the conversation's order like a message); an edit's carries the new text.
 */
export function afterChangeRow(event: StoredMessage, effect: MessageEffect, createdAt: number): OutboxInsert {
  return afterSendRow(effect.kind === "edit" ? { ...event, text: effect.text } : event, createdAt);
}

/** A row's values in OUTBOX_COLUMNS order. */
export function outboxValues(r: OutboxInsert): unknown[] {
  return [r.placeKey, r.lane, r.pos, r.eventId, r.type, r.payloadJson, r.createdAt];
}

/**
 * The columns a scan reads: pos as text (a snowflake exceeds a JS number), under another name
 * so that ORDER BY pos still sorts the number (an alias would win there).
 */
export const OUTBOX_READ_COLUMNS =
  "place_key, lane, CAST(pos AS CHAR) AS pos_text, event_id, event_type, payload_json, created_at, attempts, next_at, delivered_json";

/** A row as read back. */
export function outboxEventOf(row: Record<string, unknown>): OutboxEvent {
  const delivered = typeof row.delivered_json === "string" && row.delivered_json !== "" ? row.delivered_json : "[]";
  return {
    placeKey: String(row.place_key),
    lane: Number(row.lane),
    pos: String(row.pos_text),
    eventId: String(row.event_id),
    type: String(row.event_type),
    payloadJson: String(row.payload_json),
    createdAt: Number(row.created_at),
    attempts: Number(row.attempts),
    nextAt: Number(row.next_at),
    deliveredTo: JSON.parse(delivered) as string[],
  };
}

/** A key's values for `WHERE place_key = ? AND lane = ? AND pos = ?`. */
export function outboxKeyValues(key: OutboxKey): unknown[] {
  return [key.placeKey, key.lane, key.pos];
}

/** An error as the last_error column keeps it (VARCHAR(255)). */
export function lastErrorColumn(error: string): string {
  return [...error].slice(0, 255).join("");
}

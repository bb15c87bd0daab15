import { AppError, ErrorCode } from "../../errors.js";
import { COLUMN_CHARS, directConvMembers, requireChars } from "../../ids/identifiers.js";
import { refuseBlockedChange } from "../blocks.js";
import { DISSOLVED_GROUP_CONVERSATION } from "../group-moderation.js";
import { extrasToColumn, reactionsToColumn, recalledExtras } from "../message-model.js";
import {
  type ChangeOutcome,
  isEventKind,
  type MessageChange,
  type MessageEffect,
  STORED_KIND,
  type StoredMessage,
  type Uid,
} from "../ports.js";
import { afterChangeRow } from "../webhook-outbox.js";
import type { SqliteDatabase } from "./database.js";
import { MESSAGE_COLUMNS, type MessageRow, messageInserter, toChatMessage } from "./message-rows.js";
import { outboxInserter } from "./webhook-outbox-store.js";

/** The MySQL schema's TEXT limit, kept so both backends accept the same edits. */
const MAX_BODY_BYTES = 65_535;

/** A MessageChange whose actor and event id are canonical decimal text (the form stored). */
export type CheckedChange = MessageChange & { actor: Uid; msgId: string };

const EVENT_KIND = {
  recall: STORED_KIND.recallEvent,
  edit: STORED_KIND.editEvent,
  react: STORED_KIND.reactionEvent,
} as const;

type React = Extract<MessageEffect, { kind: "react" }>;

/**
 * Recall, edit and reaction changes and delete-for-me in the SQLite file. Each runs as one
 * db.transaction, so inside the store's group commit (TickBatch) it is a savepoint of its own:
 * a refused change undoes only itself. The write lock the batch holds is the conversation's
 * lock MySQL takes with FOR UPDATE: the target read, decide and the writes cannot interleave
 * with another writer, and the event's seq is last_seq + 1 without gaps.
 */
export class SqliteMessageChanges {
  readonly change: (c: CheckedChange) => ChangeOutcome;
  readonly hide: (uid: Uid, convId: string, seqs: number[]) => void;

  /** options.afterSendOutbox (webhooks, issue 18): each change's event also writes its after-send row. */
  constructor(db: SqliteDatabase, options: { afterSendOutbox?: boolean } = {}) {
    const s = statements(db);
    const insertRow = messageInserter(db);
    const insertAfterSend = options.afterSendOutbox ? outboxInserter(db) : undefined;

    const recall = (row: MessageRow, target: StoredMessage): MessageRow | null => {
      if (target.recalled) return null;
      const extras = recalledExtras(target);
      s.recall.run(extras, row.conv_id, row.seq);
      s.dropAllReactions.run(row.conv_id, row.seq);
      return { ...row, body: "", file_json: null, extras_json: extras, recalled: 1, reactions_json: null };
    };

    const edit = (row: MessageRow, text: string, atMs: number): MessageRow => {
      if (typeof text !== "string" || Buffer.byteLength(text, "utf8") > MAX_BODY_BYTES) {
        throw new AppError(ErrorCode.INVALID_ARGUMENT, `text must be at most ${MAX_BODY_BYTES} bytes`);
      }
      if (!Number.isSafeInteger(atMs)) throw new AppError(ErrorCode.INVALID_ARGUMENT, "atMs must be an integer");
      s.edit.run(text, atMs, row.conv_id, row.seq);
      return { ...row, body: text, edit_count: Number(row.edit_count ?? 0) + 1, edited_at: atMs };
    };

    const react = (c: CheckedChange, row: MessageRow, target: StoredMessage, effect: React): MessageRow | null => {
      requireChars(effect.emoji, COLUMN_CHARS.reaction, "reaction");
      const had = s.hasReaction.get(row.conv_id, row.seq, effect.emoji, c.actor) !== undefined;
      if (had === effect.add) return null;
      const counts = nextCounts(target, effect);
      if (effect.add) s.addReaction.run(row.conv_id, row.seq, effect.emoji, c.actor, c.sentAtMs);
      else s.dropReaction.run(row.conv_id, row.seq, effect.emoji, c.actor);
      const json = reactionsToColumn(counts);
      s.setReactions.run(json, row.conv_id, row.seq);
      return { ...row, reactions_json: json };
    };

    /** The target row after the effect, or null when the effect changes nothing. */
    const apply = (c: CheckedChange, row: MessageRow, effect: MessageEffect): MessageRow | null => {
      const target = toChatMessage(row);
      if (effect.kind === "recall") return recall(row, target);
      if (effect.kind === "edit") return edit(row, effect.text, effect.atMs);
      return react(c, row, target, effect);
    };

    const storeEvent = (c: CheckedChange, seq: number, effect: MessageEffect): StoredMessage => {
      s.setLastSeq.run(seq, c.convId);
      const reaction = effect.kind === "react" ? { emoji: effect.emoji, add: effect.add } : undefined;
      const row: MessageRow = {
        conv_id: c.convId,
        seq,
        msg_id: c.msgId,
        sender: c.actor,
        recipient: recipientOf(c.convId, c.actor),
        // Unique per conversation and sender like a client's id, and never one a client chose.
        client_msg_id: `~${c.msgId}`,
        kind: EVENT_KIND[effect.kind],
        body: "",
        sent_at: c.sentAtMs,
        file_json: null,
        extras_json: extrasToColumn({ targetSeq: c.targetSeq, reaction }),
      };
      insertRow(row);
      // The actor's own event is delivered and read, as a sender's message is.
      s.moveActorCursor.run(seq, seq, seq, c.convId, c.actor);
      const event = toChatMessage(row);
      insertAfterSend?.(afterChangeRow(event, effect, Date.now()));
      return event;
    };

    const change = db.transaction((c: CheckedChange): ChangeOutcome => {
      const conversation = s.conversation.get(c.convId);
      if (!conversation) throw new AppError(ErrorCode.NOT_FOUND, "no such conversation");
      // A dissolved group's messages stay as they were (issue 17).
      if (conversation.kind === DISSOLVED_GROUP_CONVERSATION) throw new AppError(ErrorCode.GROUP_DISSOLVED);
      if (!s.isMember.get(c.convId, c.actor)) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const row = s.message.get(c.convId, c.targetSeq);
      if (!row || isEventKind(Number(row.kind))) throw new AppError(ErrorCode.NOT_FOUND, `no message ${c.targetSeq}`);
      const effect = c.decide(toChatMessage(row));
      if (effect) refuseBlockedChange(conversation.blocked, effect);
      const changed = effect ? apply(c, row, effect) : null;
      if (!effect || !changed) return { target: toChatMessage(row) };
      const event = storeEvent(c, Number(conversation.last_seq) + 1, effect);
      const target = toChatMessage(changed);
      return { event: { ...event, target }, target };
    });
    this.change = change;

    const hide = db.transaction((uid: Uid, convId: string, seqs: number[]) => {
      const member = s.memberLastSeq.get(convId, uid);
      if (!member) throw new AppError(ErrorCode.NOT_PARTICIPANT);
      const last = Number(member.last_seq);
      // Not below retained_from_seq: those messages were purged (retention), nothing to hide.
      const first = Number(member.retained_from_seq);
      const wanted = [...new Set(seqs.filter((seq) => Number.isSafeInteger(seq) && seq >= first && seq <= last))];
      if (wanted.length === 0) return;
      // Only rows actually added count: hidden_count > 0 is what makes reads look for them at all.
      const added = s.insertHidden.run(convId, uid, JSON.stringify(wanted)).changes;
      if (added > 0) s.addHidden.run(added, convId, uid);
    });
    this.hide = hide;
  }
}

function statements(db: SqliteDatabase) {
  return {
    conversation: db.prepare<[string], { last_seq: number; kind: number; blocked: number }>(
      "SELECT last_seq, kind, blocked FROM conversations WHERE conv_id = ?",
    ),
    isMember: db.prepare<[string, string]>("SELECT 1 FROM conversation_members WHERE conv_id = ? AND uid = ?"),
    message: db.prepare<[string, number], MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE conv_id = ? AND seq = ?`,
    ),
    recall: db.prepare<[string | null, string, number]>(
      `UPDATE messages SET body = '', file_json = NULL, extras_json = ?, recalled = 1, reactions_json = NULL
        WHERE conv_id = ? AND seq = ?`,
    ),
    dropAllReactions: db.prepare<[string, number]>("DELETE FROM message_reactions WHERE conv_id = ? AND seq = ?"),
    edit: db.prepare<[string, number, string, number]>(
      "UPDATE messages SET body = ?, edit_count = edit_count + 1, edited_at = ? WHERE conv_id = ? AND seq = ?",
    ),
    hasReaction: db.prepare<[string, number, string, string]>(
      "SELECT 1 FROM message_reactions WHERE conv_id = ? AND seq = ? AND emoji = ? AND uid = ?",
    ),
    addReaction: db.prepare<[string, number, string, string, number]>(
      "INSERT INTO message_reactions (conv_id, seq, emoji, uid, created_at) VALUES (?, ?, ?, ?, ?)",
    ),
    dropReaction: db.prepare<[string, number, string, string]>(
      "DELETE FROM message_reactions WHERE conv_id = ? AND seq = ? AND emoji = ? AND uid = ?",
    ),
    setReactions: db.prepare<[string | null, string, number]>(
      "UPDATE messages SET reactions_json = ? WHERE conv_id = ? AND seq = ?",
    ),
    setLastSeq: db.prepare<[number, string]>("UPDATE conversations SET last_seq = ? WHERE conv_id = ?"),
    // As a sender's cursor: delivered moves only when it had everything before the event.
    moveActorCursor: db.prepare<[number, number, number, string, string]>(
      `UPDATE conversation_members
          SET delivered_seq = CASE WHEN delivered_seq = ? - 1 THEN ? ELSE delivered_seq END,
              read_seq = max(read_seq, ?)
        WHERE conv_id = ? AND uid = ?`,
    ),
    memberLastSeq: db.prepare<[string, string], { last_seq: number; retained_from_seq: number }>(
      `SELECT c.last_seq, c.retained_from_seq FROM conversation_members cm JOIN conversations c ON c.conv_id = cm.conv_id
        WHERE cm.conv_id = ? AND cm.uid = ?`,
    ),
    insertHidden: db.prepare<[string, string, string]>(
      "INSERT OR IGNORE INTO message_hidden (conv_id, uid, seq) SELECT ?, ?, value FROM json_each(?)",
    ),
    addHidden: db.prepare<[number, string, string]>(
      "UPDATE conversation_members SET hidden_count = hidden_count + ? WHERE conv_id = ? AND uid = ?",
    ),
  };
}

/**
 * The counts after a reaction: in the order the emojis were first used, a new one last.
 * AppError(REACTION_LIMIT) when a new emoji would exceed maxDistinct.
 */
function nextCounts(target: StoredMessage, effect: React): { emoji: string; count: number }[] {
  const counts = (target.reactions?.counts ?? []).map(({ emoji, count }) => ({ emoji, count }));
  const known = counts.find((c) => c.emoji === effect.emoji);
  if (!effect.add) {
    if (known) known.count -= 1;
    return counts;
  }
  if (known) known.count += 1;
  else if (counts.length >= effect.maxDistinct) {
    throw new AppError(ErrorCode.REACTION_LIMIT, `at most ${effect.maxDistinct} different reactions`);
  } else counts.push({ emoji: effect.emoji, count: 1 });
  return counts;
}

/** An event's recipient: the actor's peer in a 1:1 conversation, "0" in a group. */
function recipientOf(convId: string, actor: Uid): Uid {
  const pair = directConvMembers(convId);
  if (!pair) return "0";
  return pair[0] === actor ? pair[1] : pair[0];
}

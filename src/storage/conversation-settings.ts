import type { ConversationSettingsRecord } from "./ports.js";

/** A member row's settings columns (sql/072_conversation_settings.sql), as both dialects answer them. */
export interface SettingsColumns {
  pinned: number | string;
  muted: number | string;
  /** NULL: not hidden; else hidden while the conversation's last_seq is at or below it. */
  hidden_at_seq: number | string | null;
  /** The conversation's. */
  last_seq: number | string;
}

/** The columns a settings patch writes: only those of the fields it gives. */
export type SettingsChanges = Partial<{ pinned: number; muted: number; hidden_at_seq: number | null }>;

/**
 * The member row's settings columns as the record says them. Hidden only while no message came
 * after the hide: once one has, the conversation is listed again and says so, so a client that
 * gets the settings (a reply, a push to another device) never mistakes it for a new hide.
 */
export function settingsOf(row: SettingsColumns): ConversationSettingsRecord {
  const hidden = row.hidden_at_seq !== null && Number(row.last_seq) <= Number(row.hidden_at_seq);
  return { pinned: Number(row.pinned) === 1, muted: Number(row.muted) === 1, hidden };
}

/**
 * What a patch writes (fields left out stay as they are): hiding, again too, records the
 * conversation's last_seq, so the next message shows it again; unhiding writes NULL.
 */
export function settingsChanges(patch: Partial<ConversationSettingsRecord>, lastSeq: number): SettingsChanges {
  const changes: SettingsChanges = {};
  if (typeof patch.pinned === "boolean") changes.pinned = patch.pinned ? 1 : 0;
  if (typeof patch.muted === "boolean") changes.muted = patch.muted ? 1 : 0;
  if (typeof patch.hidden === "boolean") changes.hidden_at_seq = patch.hidden ? lastSeq : null;
  return changes;
}

/** The seq a clear up to `seq` reaches: 0 (or less) the newest, never past the newest. */
export function clearTarget(seq: number, lastSeq: number): number {
  const wanted = Number.isFinite(seq) ? Math.max(0, Math.floor(seq)) : 0;
  return wanted === 0 ? lastSeq : Math.min(wanted, lastSeq);
}

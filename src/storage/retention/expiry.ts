import type { ExpiredConversation } from "../ports.js";

/**
 * What a purge pass reads of one conversation (every backend's query answers these columns):
 * the send time of its first retained message (null: none, the conversation is empty or purged
 * to its end) and its group's own TTL (null or 0: none, or not a group).
 */
export interface ScannedConversation {
  conv_id: string;
  sent_at: unknown;
  group_ttl: unknown;
}

/**
 * The scanned conversations whose first retained message is older than their TTL at nowMs (the
 * group's own when it has one, else defaultTtlSeconds; 0: kept forever), with their cutoffs.
 */
export function expiredOf(
  rows: ScannedConversation[],
  nowMs: number,
  defaultTtlSeconds: number,
): ExpiredConversation[] {
  const expired: ExpiredConversation[] = [];
  for (const row of rows) {
    if (row.sent_at === null || row.sent_at === undefined) continue;
    const ttl = Number(row.group_ttl ?? 0) > 0 ? Number(row.group_ttl) : defaultTtlSeconds;
    if (!(ttl > 0)) continue;
    const cutoffMs = nowMs - ttl * 1000;
    if (Number(row.sent_at) < cutoffMs) expired.push({ convId: String(row.conv_id), cutoffMs });
  }
  return expired;
}

/**
 * The page cursor of a pass over the groups with a TTL of their own (when the deployment keeps
 * messages forever): they are read in (message_ttl_seconds, group_id) order, the order of
 * idx_groups_ttl, so each page is one range of that index.
 */
export const groupCursor = {
  format: (ttl: number, groupId: string): string => `${ttl}:${groupId}`,
  parse(cursor: string): { ttl: number; groupId: string } {
    const colon = cursor.indexOf(":");
    if (colon < 0) return { ttl: 0, groupId: "0" };
    const ttl = Number(cursor.slice(0, colon));
    const groupId = cursor.slice(colon + 1);
    return Number.isSafeInteger(ttl) && /^\d+$/.test(groupId) ? { ttl, groupId } : { ttl: 0, groupId: "0" };
  },
};

/**
 * The seq after the expired prefix of rows (the oldest messages in seq order): the first one
 * not sent before cutoffMs, else the one after the last row. rows[0]'s seq when nothing expired.
 */
export function expiredEnd(rows: { seq: unknown; sent_at: unknown }[], cutoffMs: number): number {
  const first = rows[0];
  if (!first) return 0;
  let end = Number(first.seq);
  for (const row of rows) {
    if (Number(row.sent_at) >= cutoffMs) return Number(row.seq);
    end = Number(row.seq) + 1;
  }
  return end;
}

/**
 * The ids of the files named by the messages a purge deleted (those before seq `end`, of the
 * rows it read with each one's file id, null when it names none).
 */
export function filesBefore(rows: readonly { seq: unknown; file_id: unknown }[], end: number): string[] {
  return rows.filter((r) => Number(r.seq) < end && r.file_id != null).map((r) => String(r.file_id));
}

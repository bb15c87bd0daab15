import type { RowDataPacket } from "mysql2/promise";
import { GROUP_CONV_PREFIX, groupConvId } from "../src/ids/identifiers.js";
import { EMAILS, NAMES } from "../src/storage/sharded/user-store.js";

/**
 * How a sharded table's rows map to slots: the placement key of a row (what the adapter
 * hashed when it placed the row), and when SQL can compute that key, the expression, so
 * only the slots' rows are read (MariaDB's CRC32() is the same CRC-32 as node:zlib's over
 * the same UTF-8 bytes; test/rebalance.test.ts checks it).
 */
export interface TablePlacement {
  table: string;
  pk: string[];
  keyOf(row: RowDataPacket): string;
  /** The key as SQL over the row's columns, each prefixed by `row` (a table alias, or a trigger's NEW. or OLD.). */
  keySql?: (row: string) => string;
  /**
   * For the rows of a conversation (their primary key starts with conv_id): they are read and
   * counted per slot through the slot's rows of `conversations`, a range of the primary key per
   * conversation, instead of a scan of the whole table. Every store writes a conversation's
   * row in the transaction that writes its first member or message, so none is left out.
   */
  byConversation?: true;
}

/** Every sharded table and its placement (sql/README.md says why each is placed so). */
export const PLACEMENTS: readonly TablePlacement[] = [
  { table: "conversations", pk: ["conv_id"], keyOf: (r) => String(r.conv_id), keySql: (row) => `${row}conv_id` },
  {
    table: "conversation_members",
    pk: ["conv_id", "uid"],
    keyOf: (r) => String(r.conv_id),
    keySql: (row) => `${row}conv_id`,
    byConversation: true,
  },
  {
    table: "messages",
    pk: ["conv_id", "seq"],
    keyOf: (r) => String(r.conv_id),
    keySql: (row) => `${row}conv_id`,
    byConversation: true,
  },
  { table: "users", pk: ["uid"], keyOf: (r) => String(r.uid), keySql: (row) => `CAST(${row}uid AS CHAR)` },
  {
    table: "user_conversations",
    pk: ["uid", "conv_id"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  // Folded names and emails: the fold (accents stripped) has no SQL equivalent, so these are
  // read whole and filtered here.
  { table: "user_names", pk: ["name"], keyOf: (r) => NAMES.placement(String(r.name)) },
  { table: "user_emails", pk: ["email"], keyOf: (r) => EMAILS.placement(String(r.email)) },
  // Friends (issue 4): a friendship row by its owner's uid, an application by its recipient's.
  {
    table: "friendships",
    pk: ["uid", "friend_uid"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  {
    table: "friend_applications",
    pk: ["to_uid", "from_uid"],
    keyOf: (r) => String(r.to_uid),
    keySql: (row) => `CAST(${row}to_uid AS CHAR)`,
  },
  // A group lives beside its conversation "g:<group_id>".
  {
    table: "chat_groups",
    pk: ["group_id"],
    keyOf: (r) => groupConvId(String(r.group_id)),
    keySql: (row) => `CONCAT('${GROUP_CONV_PREFIX}', CAST(${row}group_id AS CHAR))`,
  },
  {
    table: "group_members",
    pk: ["group_id", "uid"],
    keyOf: (r) => groupConvId(String(r.group_id)),
    keySql: (row) => `CONCAT('${GROUP_CONV_PREFIX}', CAST(${row}group_id AS CHAR))`,
  },
  {
    table: "group_invitations",
    pk: ["group_id", "uid"],
    keyOf: (r) => groupConvId(String(r.group_id)),
    keySql: (row) => `CONCAT('${GROUP_CONV_PREFIX}', CAST(${row}group_id AS CHAR))`,
  },
  // Join requests (issue 17) beside their group.
  {
    table: "group_join_requests",
    pk: ["group_id", "uid"],
    keyOf: (r) => groupConvId(String(r.group_id)),
    keySql: (row) => `CONCAT('${GROUP_CONV_PREFIX}', CAST(${row}group_id AS CHAR))`,
  },
  {
    table: "files",
    pk: ["file_id"],
    keyOf: (r) => `file:${r.file_id}`,
    keySql: (row) => `CONCAT('file:', CAST(${row}file_id AS CHAR))`,
  },
  // Direct uploads not yet completed (issue 19), beside the files row they become.
  {
    table: "pending_uploads",
    pk: ["file_id"],
    keyOf: (r) => `file:${r.file_id}`,
    keySql: (row) => `CONCAT('file:', CAST(${row}file_id AS CHAR))`,
  },
  // The message model (issue 16): reactions and delete-for-me marks beside their conversation,
  // a forwarded file's shares beside the file.
  {
    table: "message_reactions",
    pk: ["conv_id", "seq", "emoji", "uid"],
    keyOf: (r) => String(r.conv_id),
    keySql: (row) => `${row}conv_id`,
    byConversation: true,
  },
  {
    table: "message_hidden",
    pk: ["conv_id", "uid", "seq"],
    keyOf: (r) => String(r.conv_id),
    keySql: (row) => `${row}conv_id`,
    byConversation: true,
  },
  {
    table: "file_shares",
    pk: ["file_id", "conv_id"],
    keyOf: (r) => `file:${r.file_id}`,
    keySql: (row) => `CONCAT('file:', CAST(${row}file_id AS CHAR))`,
  },
  // Blocks and reports (issue 17): a block by its blocker's uid (the mark on the pair's
  // conversation row moves with conversations), a report by its id.
  {
    table: "user_blocks",
    pk: ["uid", "blocked_uid"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  {
    table: "reports",
    pk: ["report_id"],
    keyOf: (r) => `report:${r.report_id}`,
    keySql: (row) => `CONCAT('report:', CAST(${row}report_id AS CHAR))`,
  },
  // Account deletion requests (issue 17) by uid, beside the user's other rows.
  {
    table: "account_deletions",
    pk: ["uid"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  // Push devices (issue 18) by uid, beside the user's other rows.
  {
    table: "push_devices",
    pk: ["uid", "device_id"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  // The Server API (issue 18): a ban by uid beside the user's row, an API key by its id.
  {
    table: "user_bans",
    pk: ["uid"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  // Bots (issue 18) by uid, beside the bot's user row.
  {
    table: "bots",
    pk: ["uid"],
    keyOf: (r) => String(r.uid),
    keySql: (row) => `CAST(${row}uid AS CHAR)`,
  },
  {
    table: "api_keys",
    pk: ["key_id"],
    keyOf: (r) => `apikey:${r.key_id}`,
    keySql: (row) => `CONCAT('apikey:', ${row}key_id)`,
  },
  // Webhook events waiting for delivery (issue 18) by their place key: a conversation's beside
  // it (a message's after-send row is written in the message's transaction), a user's event by
  // its uid. Mixed keys, so not byConversation: the table is small (rows go once delivered).
  {
    table: "webhook_outbox",
    pk: ["place_key", "lane", "pos"],
    keyOf: (r) => String(r.place_key),
    keySql: (row) => `${row}place_key`,
  },
];

/** Tables that are not placed by slot: they stay where they are. */
export const UNPLACED = new Set([
  "schema_migrations",
  "shard_map",
  "slot_fence",
  "slot_changes",
  "rebalance_jobs",
  "rebalance_slots",
]);

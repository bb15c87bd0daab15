-- The message model (issue 16): what a message carries beyond text and file, the state later
-- events change, per-user reactions, delete-for-me marks, mention marks and forwarded files.
-- Every new row is placed by its conversation (or, for file_shares, by its file) and moves with
-- it in a rebalance (sharding/placements.ts).

-- extras_json: custom content, the quoted message of a reply, mentions, a forward's origin, and
-- an event's target seq and reaction (src/storage/message-model.ts). NULL for a plain message.
-- The state columns are written only by changes (recall, edit, reaction): a plain append writes
-- one more NULL and nothing else.
ALTER TABLE messages
  ADD COLUMN IF NOT EXISTS extras_json TEXT NULL,
  ADD COLUMN IF NOT EXISTS edit_count SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS edited_at BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS recalled TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS reactions_json TEXT NULL;

-- mention_seq: the last message that mentioned this member; hidden_count: how many messages it
-- deleted for itself (0: history and sync need not look in message_hidden).
ALTER TABLE conversation_members
  ADD COLUMN IF NOT EXISTS mention_seq INT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS hidden_count INT UNSIGNED NOT NULL DEFAULT 0;

-- The last message that mentioned everyone (a group's "@everyone").
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS mention_all_seq INT UNSIGNED NOT NULL DEFAULT 0;

-- One row per (message, emoji, user); messages.reactions_json holds the counts, so a read needs
-- this table only for the reader's own reactions on messages that have any.
CREATE TABLE IF NOT EXISTS message_reactions (
  conv_id VARCHAR(64) NOT NULL,
  seq INT UNSIGNED NOT NULL,
  emoji VARCHAR(32) NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (conv_id, seq, emoji, uid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Delete for me: the messages a member hid from itself.
CREATE TABLE IF NOT EXISTS message_hidden (
  conv_id VARCHAR(64) NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  seq INT UNSIGNED NOT NULL,
  PRIMARY KEY (conv_id, uid, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A file forwarded into another conversation: that conversation's participants may download it.
-- Placed by file id, beside the files row, so a download's check is one shard.
CREATE TABLE IF NOT EXISTS file_shares (
  file_id BIGINT UNSIGNED NOT NULL,
  conv_id VARCHAR(64) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (file_id, conv_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The message model (issue 16): the same columns and tables as sql/060_message_model.sql.

ALTER TABLE messages ADD COLUMN extras_json TEXT NULL;
ALTER TABLE messages ADD COLUMN edit_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN edited_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN reactions_json TEXT NULL;

ALTER TABLE conversation_members ADD COLUMN mention_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversation_members ADD COLUMN hidden_count INTEGER NOT NULL DEFAULT 0;

ALTER TABLE conversations ADD COLUMN mention_all_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS message_reactions (
  conv_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  emoji TEXT NOT NULL,
  uid TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (conv_id, seq, emoji, uid)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS message_hidden (
  conv_id TEXT NOT NULL,
  uid TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (conv_id, uid, seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS file_shares (
  file_id TEXT NOT NULL,
  conv_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, conv_id)
) WITHOUT ROWID;

-- Core schema for the embedded default (STORAGE_BACKEND=sqlite); the same tables as
-- sql/001_core.sql. Ids are uint64 snowflakes, beyond SQLite's signed 64-bit INTEGER, so
-- they are stored as canonical decimal TEXT. Names and emails compare case-insensitively
-- (NOCASE folds ASCII only, where MySQL's utf8mb4_general_ci folds more).

CREATE TABLE IF NOT EXISTS users (
  uid TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL COLLATE NOCASE,
  email TEXT NOT NULL COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  CONSTRAINT uk_users_name UNIQUE (name),
  CONSTRAINT uk_users_email UNIQUE (email)
) WITHOUT ROWID;

-- last_seq advances in the same transaction that stores a message: seqs have no gaps.
CREATE TABLE IF NOT EXISTS conversations (
  conv_id TEXT NOT NULL PRIMARY KEY,
  kind INTEGER NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- How far each member has received (delivered_seq, the sync cursor) and read (read_seq).
CREATE TABLE IF NOT EXISTS conversation_members (
  conv_id TEXT NOT NULL,
  uid TEXT NOT NULL,
  delivered_seq INTEGER NOT NULL DEFAULT 0,
  read_seq INTEGER NOT NULL DEFAULT 0,
  joined_at INTEGER NOT NULL,
  PRIMARY KEY (conv_id, uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_members_uid ON conversation_members (uid, conv_id);

-- The unique client key makes a resend after a lost ack return the stored message.
CREATE TABLE IF NOT EXISTS messages (
  conv_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  msg_id TEXT NOT NULL,
  sender TEXT NOT NULL,
  recipient TEXT NOT NULL DEFAULT '0',
  client_msg_id TEXT NOT NULL,
  kind INTEGER NOT NULL,
  body TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  PRIMARY KEY (conv_id, seq),
  CONSTRAINT uk_messages_id UNIQUE (msg_id),
  CONSTRAINT uk_messages_client UNIQUE (conv_id, sender, client_msg_id)
) WITHOUT ROWID;

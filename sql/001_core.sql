-- Core schema: users, 1:1 conversations and their messages.
-- Names and emails compare case-insensitively (utf8mb4_general_ci); ids are snowflakes.

CREATE TABLE IF NOT EXISTS users (
  uid BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name VARCHAR(32) NOT NULL COLLATE utf8mb4_general_ci,
  email VARCHAR(254) NOT NULL COLLATE utf8mb4_general_ci,
  password_hash VARCHAR(255) NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE KEY uk_users_name (name),
  UNIQUE KEY uk_users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per conversation; last_seq is advanced inside the same transaction that stores a
-- message, so sequences have no gaps.
CREATE TABLE IF NOT EXISTS conversations (
  conv_id VARCHAR(64) NOT NULL PRIMARY KEY,
  kind TINYINT UNSIGNED NOT NULL,
  last_seq INT UNSIGNED NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Who is in a conversation and how far each member has received (delivered_seq, the sync
-- cursor) and read (read_seq). Lives beside its conversation.
CREATE TABLE IF NOT EXISTS conversation_members (
  conv_id VARCHAR(64) NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  delivered_seq INT UNSIGNED NOT NULL DEFAULT 0,
  read_seq INT UNSIGNED NOT NULL DEFAULT 0,
  joined_at BIGINT NOT NULL,
  PRIMARY KEY (conv_id, uid),
  KEY idx_members_uid (uid, conv_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Messages by (conversation, seq). The unique client key makes a resend after a lost ack
-- return the stored message instead of a second copy.
CREATE TABLE IF NOT EXISTS messages (
  conv_id VARCHAR(64) NOT NULL,
  seq INT UNSIGNED NOT NULL,
  msg_id BIGINT UNSIGNED NOT NULL,
  sender BIGINT UNSIGNED NOT NULL,
  recipient BIGINT UNSIGNED NOT NULL DEFAULT 0,
  client_msg_id VARCHAR(64) NOT NULL,
  kind TINYINT UNSIGNED NOT NULL,
  body TEXT NOT NULL,
  sent_at BIGINT NOT NULL,
  PRIMARY KEY (conv_id, seq),
  UNIQUE KEY uk_messages_id (msg_id),
  UNIQUE KEY uk_messages_client (conv_id, sender, client_msg_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

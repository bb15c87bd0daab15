-- Sharding: the shard map (read on the control instance only) and the index tables that let
-- queries spanning shards ask only the shards that hold an answer. Applied on every instance;
-- where each row lives is in sql/README.md.

-- The slot → instance map, one row per version; nodes read the highest version.
CREATE TABLE IF NOT EXISTS shard_map (
  version INT UNSIGNED NOT NULL PRIMARY KEY,
  map_json MEDIUMTEXT NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The conversations a user belongs to, on the user's shard (by uid): pending() asks only the
-- shards these conversations live on. Written before a conversation's first member row.
CREATE TABLE IF NOT EXISTS user_conversations (
  uid BIGINT UNSIGNED NOT NULL,
  conv_id VARCHAR(64) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (uid, conv_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- name → uid on the name's shard (by the folded name's hash): the one place a name is unique.
CREATE TABLE IF NOT EXISTS user_names (
  name VARCHAR(32) NOT NULL COLLATE utf8mb4_general_ci PRIMARY KEY,
  uid BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- email → uid on the email's shard (by the lower-cased email's hash).
CREATE TABLE IF NOT EXISTS user_emails (
  email VARCHAR(254) NOT NULL COLLATE utf8mb4_general_ci PRIMARY KEY,
  uid BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The Server API (issue 18).

-- API keys: global rows, each placed by "apikey:" + key_id. The key is never stored, only the
-- SHA-256 digest of its secret part (hex). revoked_at 0: valid.
CREATE TABLE IF NOT EXISTS api_keys (
  key_id VARCHAR(32) NOT NULL PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  secret_digest CHAR(64) NOT NULL,
  created_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Bans: one row per banned user, placed by uid (beside users), read by every login.
-- until_ms 0: until unbanned.
CREATE TABLE IF NOT EXISTS user_bans (
  uid BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  until_ms BIGINT NOT NULL DEFAULT 0,
  reason VARCHAR(500) NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

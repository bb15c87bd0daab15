-- Blocking and reports (issue 17).

-- A block: the blocker's row, placed by uid (the blocker), so its list and count are one read
-- of one shard and the rows move with the user's slot.
CREATE TABLE IF NOT EXISTS user_blocks (
  uid BIGINT UNSIGNED NOT NULL,
  blocked_uid BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (uid, blocked_uid),
  KEY idx_blocks_newest (uid, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The mark every 1:1 append reads under the conversation row's lock (no extra round trip):
-- in "p:<low>:<high>", bit 1 = the lower uid blocks the higher, bit 2 = the higher blocks the
-- lower. A block of a pair that never talked creates the row empty (last_seq 0, no members).
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS blocked TINYINT UNSIGNED NOT NULL DEFAULT 0;

-- Reports for the operators, placed by "report:" + report_id (a snowflake); read newest first
-- from every shard (a rare read, so no per-reporter index). snapshot: the reported message's
-- text, file name and custom payload as they were (a text may fill a TEXT column alone).
CREATE TABLE IF NOT EXISTS reports (
  report_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  reporter BIGINT UNSIGNED NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  conv_id VARCHAR(64) NOT NULL DEFAULT '',
  seq INT UNSIGNED NOT NULL DEFAULT 0,
  snapshot MEDIUMTEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  KEY idx_reports_newest (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Friends: a friendship is two rows, (a → b) on a's shard and (b → a) on b's shard (placed by
-- uid), so a user's friend list and "is b my friend" are one read of one shard. An application
-- lives on the recipient's shard (by to_uid): the pending list at login is one read there.

CREATE TABLE IF NOT EXISTS friendships (
  uid BIGINT UNSIGNED NOT NULL,
  friend_uid BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (uid, friend_uid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS friend_applications (
  to_uid BIGINT UNSIGNED NOT NULL,
  from_uid BIGINT UNSIGNED NOT NULL,
  message VARCHAR(500) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (to_uid, from_uid),
  KEY idx_applications_newest (to_uid, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

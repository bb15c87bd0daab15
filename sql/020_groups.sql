-- Groups: metadata and members with roles. Both are placed by the group's conversation id
-- ("g:<group_id>", a function of the group id alone), so they live beside the group's
-- conversation row, member cursors (conversation_members) and messages: a membership change
-- and the member's cursor change in one local transaction. See sql/README.md.

CREATE TABLE IF NOT EXISTS chat_groups (
  group_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  owner BIGINT UNSIGNED NOT NULL,
  member_count INT UNSIGNED NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- role: 1 member, 2 admin, 3 owner (proto GroupRole). Paged by (group_id, uid).
CREATE TABLE IF NOT EXISTS group_members (
  group_id BIGINT UNSIGNED NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  role TINYINT UNSIGNED NOT NULL,
  joined_at BIGINT NOT NULL,
  PRIMARY KEY (group_id, uid),
  KEY idx_group_members_uid (uid, group_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

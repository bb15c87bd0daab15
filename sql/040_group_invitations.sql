-- Group invitations (issue 14, item 5): a user joins a group only by accepting, unless
-- GROUP_JOIN_CONSENT lets the inviter add it. Placed, like chat_groups and group_members, by
-- the group's conversation id ("g:<group_id>"), so accepting deletes the invitation and adds
-- the member in one local transaction. A user's list asks every shard by idx_group_invitations_uid.

CREATE TABLE IF NOT EXISTS group_invitations (
  group_id BIGINT UNSIGNED NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  inviter BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (group_id, uid),
  KEY idx_group_invitations_uid (uid, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

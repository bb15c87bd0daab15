-- Group moderation (issue 17): mutes, an announcement, join approval and dissolution, on the
-- group's own rows (placed by "g:<group_id>", beside the group's conversation), and open
-- join requests beside their group (sharding/placements.ts, sql/README.md).

-- muted_until: the member may not post before then (ms since the epoch; 0: not muted). Read
-- by a group message's membership check, which reads the member row anyway.
ALTER TABLE group_members ADD COLUMN IF NOT EXISTS muted_until BIGINT NOT NULL DEFAULT 0;

-- muted_all: only admins and the owner post. announcement: shown at the top of the group (NULL:
-- none), with who set it and when. join_approval: new members join only when an admin admits
-- their join request. dissolved: the owner dissolved the group; its member rows are gone.
ALTER TABLE chat_groups
  ADD COLUMN IF NOT EXISTS muted_all TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS announcement TEXT NULL,
  ADD COLUMN IF NOT EXISTS announcement_by BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS announcement_at BIGINT NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS join_approval TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS dissolved TINYINT UNSIGNED NOT NULL DEFAULT 0;

-- A user's request to join a group that requires approval (asking again renews it). Admins
-- list a group's open requests newest first by idx_group_join_requests_time; an answer deletes
-- the request and (accept) adds the member in one local transaction.
CREATE TABLE IF NOT EXISTS group_join_requests (
  group_id BIGINT UNSIGNED NOT NULL,
  uid BIGINT UNSIGNED NOT NULL,
  message TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (group_id, uid),
  KEY idx_group_join_requests_time (group_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

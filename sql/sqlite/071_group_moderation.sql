-- Group moderation (issue 17): the same columns and table as sql/071_group_moderation.sql.

ALTER TABLE group_members ADD COLUMN muted_until INTEGER NOT NULL DEFAULT 0;

ALTER TABLE chat_groups ADD COLUMN muted_all INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN announcement TEXT NULL;
ALTER TABLE chat_groups ADD COLUMN announcement_by TEXT NOT NULL DEFAULT '0';
ALTER TABLE chat_groups ADD COLUMN announcement_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN join_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chat_groups ADD COLUMN dissolved INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS group_join_requests (
  group_id TEXT NOT NULL,
  uid TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (group_id, uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_group_join_requests_time ON group_join_requests (group_id, created_at);

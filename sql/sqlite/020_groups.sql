-- Groups: the same tables as sql/020_groups.sql (ids as canonical decimal TEXT).

CREATE TABLE IF NOT EXISTS chat_groups (
  group_id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  member_count INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- role: 1 member, 2 admin, 3 owner (proto GroupRole).
CREATE TABLE IF NOT EXISTS group_members (
  group_id TEXT NOT NULL,
  uid TEXT NOT NULL,
  role INTEGER NOT NULL,
  joined_at INTEGER NOT NULL,
  PRIMARY KEY (group_id, uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_group_members_uid ON group_members (uid, group_id);

-- Group invitations: the same table as sql/040_group_invitations.sql (ids as canonical decimal TEXT).

CREATE TABLE IF NOT EXISTS group_invitations (
  group_id TEXT NOT NULL,
  uid TEXT NOT NULL,
  inviter TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (group_id, uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_group_invitations_uid ON group_invitations (uid, created_at);

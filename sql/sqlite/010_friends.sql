-- Friends for the embedded default; the same tables as sql/010_friends.sql (a friendship is
-- two rows, one per side; an application is keyed by its recipient).

CREATE TABLE IF NOT EXISTS friendships (
  uid TEXT NOT NULL,
  friend_uid TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (uid, friend_uid)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS friend_applications (
  to_uid TEXT NOT NULL,
  from_uid TEXT NOT NULL,
  message TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (to_uid, from_uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_applications_newest ON friend_applications (to_uid, created_at);

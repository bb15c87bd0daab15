-- Blocking and reports (issue 17): the same tables and column as sql/070_blocks_reports.sql.

CREATE TABLE IF NOT EXISTS user_blocks (
  uid TEXT NOT NULL,
  blocked_uid TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (uid, blocked_uid)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_blocks_newest ON user_blocks (uid, created_at);

-- Bit 1: the lower uid of "p:<low>:<high>" blocks the higher; bit 2: the higher blocks the lower.
ALTER TABLE conversations ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS reports (
  report_id TEXT NOT NULL PRIMARY KEY,
  reporter TEXT NOT NULL,
  uid TEXT NOT NULL,
  conv_id TEXT NOT NULL DEFAULT '',
  seq INTEGER NOT NULL DEFAULT 0,
  snapshot TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS idx_reports_newest ON reports (created_at);

-- Per-user storage quota and file cleanup: the same as sql/091_file_quota.sql.

ALTER TABLE files ADD COLUMN sends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN released_at INTEGER NULL;
UPDATE files SET sends = 2 WHERE sent_at IS NOT NULL AND sends = 0;
CREATE INDEX IF NOT EXISTS idx_files_owner ON files (owner);
CREATE INDEX IF NOT EXISTS idx_files_released ON files (released_at);

CREATE TABLE IF NOT EXISTS pending_uploads (
  file_id TEXT NOT NULL PRIMARY KEY,
  owner TEXT NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_pending_uploads_created ON pending_uploads (created_at);

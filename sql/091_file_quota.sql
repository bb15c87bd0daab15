-- Per-user storage quota and file cleanup (issue 19).
--
-- idx_files_owner: a user's usage (GATE_USER_STORAGE_MAX_BYTES) is SUM(size) of its rows, read on
-- every upload. Files are placed by file id, so sharded that is one query per instance, each by
-- this index.
--
-- sends: how many messages named the file (FileMetaStore.markSent counts each send); a recall or
-- the retention purge releases the file only when it was the last one and the file was never
-- forwarded. Files sent before this migration count as sent twice: how many messages name them
-- is unknown, so a release never frees one another message may still name.
--
-- released_at: no message names the file any more (recalled or purged); gate's sweep deletes
-- the row and the bytes.
ALTER TABLE files ADD COLUMN IF NOT EXISTS sends INT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN IF NOT EXISTS released_at BIGINT NULL;
UPDATE files SET sends = 2 WHERE sent_at IS NOT NULL AND sends = 0;
ALTER TABLE files ADD INDEX IF NOT EXISTS idx_files_owner (owner);
ALTER TABLE files ADD INDEX IF NOT EXISTS idx_files_released (released_at);

-- Direct uploads started (POST /v1/files/uploads) and not completed: the object a client PUT
-- (or may still PUT) that no files row names. Completion deletes the row; gate's sweep deletes
-- what is older than an upload ticket's lifetime (GATE_UNSENT_UPLOAD_TTL_MS) with its object.
-- Placed by file id, beside the files row it becomes (sql/README.md).
CREATE TABLE IF NOT EXISTS pending_uploads (
  file_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  owner BIGINT UNSIGNED NOT NULL,
  created_at BIGINT NOT NULL,
  KEY idx_pending_uploads_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

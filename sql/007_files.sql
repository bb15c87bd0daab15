-- Files (issue 4, part 5): uploaded files' metadata, placed by file id (sql/README.md), and the
-- file a message names, copied onto the message so history never reads the files table.

CREATE TABLE IF NOT EXISTS files (
  file_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  owner BIGINT UNSIGNED NOT NULL,
  conv_id VARCHAR(64) NOT NULL,
  name VARCHAR(255) NOT NULL,
  size BIGINT UNSIGNED NOT NULL,
  content_type VARCHAR(127) NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE messages ADD COLUMN IF NOT EXISTS file_json TEXT NULL;

-- Files: the same as sql/007_files.sql. Ids are canonical decimal TEXT.

CREATE TABLE IF NOT EXISTS files (
  file_id TEXT NOT NULL PRIMARY KEY,
  owner TEXT NOT NULL,
  conv_id TEXT NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  content_type TEXT NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE messages ADD COLUMN file_json TEXT;

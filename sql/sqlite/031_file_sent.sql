-- Uploads no message refers to are swept (as sql/031_file_sent.sql).

ALTER TABLE files ADD COLUMN sent_at INTEGER NULL;
CREATE INDEX IF NOT EXISTS idx_files_unsent ON files (sent_at, created_at);

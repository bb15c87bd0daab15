-- Uploads no message refers to are swept (SECURITY.md item 10): a file is marked when a message
-- first names it, and the sweep deletes what was never marked within GATE_UNSENT_UPLOAD_TTL_MS.

ALTER TABLE files ADD COLUMN IF NOT EXISTS sent_at BIGINT NULL;
ALTER TABLE files ADD INDEX IF NOT EXISTS idx_files_unsent (sent_at, created_at);

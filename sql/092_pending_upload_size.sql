-- An upload started and not completed reserves its declared size in its owner's storage quota
-- (GATE_USER_STORAGE_MAX_BYTES): without it, uploads started together, each within the quota,
-- passed it together once completed. Rows from before this migration reserve nothing (0).
-- Resumable (tus) uploads get a row too from now on, beside direct ones.
ALTER TABLE pending_uploads ADD COLUMN IF NOT EXISTS size BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE pending_uploads ADD INDEX IF NOT EXISTS idx_pending_uploads_owner (owner);

-- An upload started and not completed reserves its declared size: the same as sql/092_pending_upload_size.sql.
ALTER TABLE pending_uploads ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS idx_pending_uploads_owner ON pending_uploads (owner);

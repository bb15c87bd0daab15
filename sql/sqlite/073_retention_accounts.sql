-- Retention (issue 17): the same columns and index as sql/073_retention_accounts.sql.

ALTER TABLE conversations ADD COLUMN retained_from_seq INTEGER NOT NULL DEFAULT 1;

ALTER TABLE chat_groups ADD COLUMN message_ttl_seconds INTEGER NOT NULL DEFAULT 0;

CREATE INDEX IF NOT EXISTS idx_groups_ttl ON chat_groups (message_ttl_seconds);

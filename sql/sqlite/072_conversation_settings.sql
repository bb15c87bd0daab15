-- Conversation settings (issue 17): the same columns as sql/072_conversation_settings.sql.

ALTER TABLE conversation_members ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversation_members ADD COLUMN muted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversation_members ADD COLUMN hidden_at_seq INTEGER NULL;
ALTER TABLE conversation_members ADD COLUMN cleared_seq INTEGER NOT NULL DEFAULT 0;

-- Conversation settings (issue 17): each member's own settings of a conversation and how far
-- it cleared the history for itself, on its member row (beside the conversation, so the
-- conversation list, history and sync read them from the rows they read already).
--   pinned: listed first; muted: do not disturb (no push notification);
--   hidden_at_seq: hidden from the list while last_seq <= it (NULL: not hidden), so the next
--     message shows the conversation again;
--   cleared_seq: history, sync and the list start after it for this member alone.
ALTER TABLE conversation_members
  ADD COLUMN IF NOT EXISTS pinned TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS muted TINYINT UNSIGNED NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS hidden_at_seq INT UNSIGNED NULL,
  ADD COLUMN IF NOT EXISTS cleared_seq INT UNSIGNED NOT NULL DEFAULT 0;

-- Retention and account deletion (issue 17).

-- retained_from_seq: the first seq still stored (1 until a purge). The purge deletes a
-- conversation's oldest expired messages, a prefix from here, and moves it past them in the same
-- transaction; seqs stay what they were (history answers first_seq, sync starts here).
ALTER TABLE conversations ADD COLUMN IF NOT EXISTS retained_from_seq INT UNSIGNED NOT NULL DEFAULT 1;

-- A group's own message TTL (0: the deployment's MESSAGE_TTL_SECONDS). The index lets a purge
-- pass find the groups that have one in one range read, so a deployment that keeps messages
-- forever (MESSAGE_TTL_SECONDS=0) and has no group with a TTL pays one empty index read per pass.
ALTER TABLE chat_groups
  ADD COLUMN IF NOT EXISTS message_ttl_seconds INT UNSIGNED NOT NULL DEFAULT 0,
  ADD KEY IF NOT EXISTS idx_groups_ttl (message_ttl_seconds);

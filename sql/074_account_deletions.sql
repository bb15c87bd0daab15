-- Account deletion as a request (issue 17). Gate may not touch a user's friendships, groups,
-- blocks or messages (its MySQL user has only its own tables, src/storage/mysql/grants.ts), so
-- DELETE /v1/account records the request here and deletes the profile; the chat nodes'
-- deletion worker (src/account/account-deletion-worker.ts) carries out the rest and then
-- deletes the row. Placed by uid, beside the user's other rows: gate's write and the worker's
-- delete are one statement on one shard, and a pass over an instance reads only its own rows.
-- erase_messages: 1 when the requesting gate had ACCOUNT_DELETE_MESSAGES=erase.
CREATE TABLE IF NOT EXISTS account_deletions (
  uid BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  requested_at BIGINT NOT NULL,
  erase_messages TINYINT UNSIGNED NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Account deletion as a request (issue 17): the same table as sql/074_account_deletions.sql.

CREATE TABLE IF NOT EXISTS account_deletions (
  uid TEXT NOT NULL PRIMARY KEY,
  requested_at INTEGER NOT NULL,
  erase_messages INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

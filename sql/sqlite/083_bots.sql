-- Bots (issue 18): the same table as sql/083_bots.sql.

CREATE TABLE IF NOT EXISTS bots (
  uid TEXT NOT NULL PRIMARY KEY,
  webhook_url TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

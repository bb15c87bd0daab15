-- Webhooks (issue 18): the same table as sql/081_webhook_outbox.sql.

CREATE TABLE IF NOT EXISTS webhook_outbox (
  place_key TEXT NOT NULL,
  lane INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL DEFAULT 0,
  dead INTEGER NOT NULL DEFAULT 0,
  delivered_json TEXT,
  last_error TEXT,
  PRIMARY KEY (place_key, lane, pos)
) WITHOUT ROWID;

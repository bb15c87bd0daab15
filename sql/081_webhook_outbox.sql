-- Webhooks (issue 18): events waiting to be POSTed to the configured endpoints (src/webhooks).
-- A stored message's message.after_send row is written in the transaction that stores the
-- message (the group commit's batch: one multi-row insert), so a committed message's event is
-- never lost, whatever happens to the process after COMMIT; the chat nodes' dispatcher (one per
-- instance at a time, under a lease) sends the rows and deletes them once every endpoint
-- answered 2xx.
--
-- place_key: where the row is placed, as every sharded table by its key: the conversation id
-- for message and group events, the uid (decimal) for user and friend events; the rows move
-- with it in a rebalance (sharding/placements.ts). lane 0: the conversation's after-send
-- events, pos = the message's seq; lane 1: every other event of the key, pos = a snowflake.
-- The primary key is the delivery order of a lane: its first row not dead is the one sent
-- next, and a lane waits while that row is retried. No auto-increment id: a copied row keeps
-- its key on any instance.
-- attempts / next_at (ms): the retries so far and when the next may start; dead = 1 after
-- WEBHOOK_MAX_ATTEMPTS (kept for an operator, skipped by the dispatcher). delivered_json: the
-- endpoints that already answered 2xx (not sent again on a retry).
CREATE TABLE IF NOT EXISTS webhook_outbox (
  place_key VARCHAR(64) NOT NULL,
  lane TINYINT UNSIGNED NOT NULL,
  pos BIGINT UNSIGNED NOT NULL,
  event_id VARCHAR(100) NOT NULL,
  event_type VARCHAR(40) NOT NULL,
  payload_json MEDIUMTEXT NOT NULL,
  created_at BIGINT NOT NULL,
  attempts INT UNSIGNED NOT NULL DEFAULT 0,
  next_at BIGINT NOT NULL DEFAULT 0,
  dead TINYINT UNSIGNED NOT NULL DEFAULT 0,
  delivered_json TEXT NULL,
  last_error VARCHAR(255) NULL,
  PRIMARY KEY (place_key, lane, pos)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

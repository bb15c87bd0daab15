-- Bots (issue 18): a user account the Server API drives (POST /admin/v1/bots), which receives
-- the messages it should see as signed bot.message calls to webhook_url. One row per bot, placed
-- by uid beside the user's other rows (moved with it by the rebalancer). Few rows: the webhook
-- dispatcher reads them all (every instance) and caches them for BOTS_CACHE_MS.
CREATE TABLE IF NOT EXISTS bots (
  uid BIGINT UNSIGNED NOT NULL PRIMARY KEY,
  webhook_url VARCHAR(2048) NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

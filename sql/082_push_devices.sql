-- Push devices (issue 18): one row per user and device, what its push service addresses it by
-- (provider webpush: a Web Push subscription as JSON; fcm, apns: the app's token). Placed by
-- uid, beside the user's other rows: gate's registration is one upsert on the uid's shard, and
-- the chat node that stores a message reads an offline recipient's devices in one read there.
-- token is TEXT (a subscription's endpoint URL and keys), bounded at the edge by
-- PUSH_TOKEN_MAX_BYTES; updated_at orders a user's devices (the oldest make room past
-- PUSH_DEVICES_PER_USER).
CREATE TABLE IF NOT EXISTS push_devices (
  uid BIGINT UNSIGNED NOT NULL,
  device_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  provider VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  token TEXT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (uid, device_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

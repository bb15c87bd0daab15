-- Push devices (issue 18): the same table as sql/082_push_devices.sql.

CREATE TABLE IF NOT EXISTS push_devices (
  uid TEXT NOT NULL,
  device_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  token TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (uid, device_id)
) WITHOUT ROWID;

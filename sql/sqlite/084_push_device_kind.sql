-- Push devices' kinds (issue 18): the same as sql/084_push_device_kind.sql.

ALTER TABLE push_devices ADD COLUMN device_kind TEXT NOT NULL DEFAULT '';

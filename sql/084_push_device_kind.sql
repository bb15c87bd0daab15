-- Push devices' kinds (issue 18): the device kind a device's app logs in as (desktop, web,
-- mobile), so a phone is pushed while its user is on the desktop. Rows registered before it
-- read '' and take their provider's default (webpush: web; fcm, apns: mobile).
ALTER TABLE push_devices ADD COLUMN IF NOT EXISTS device_kind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '' AFTER provider;

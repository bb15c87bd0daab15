-- Media: the same as sql/090_media.sql.

ALTER TABLE files ADD COLUMN media_json TEXT;

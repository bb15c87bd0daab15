-- Media (issue 19): what gate learned of a file's content on upload (an image's dimensions and
-- thumbnail, a recording's duration), as JSON; NULL for other files. A file message copies it
-- into messages.file_json with the rest of the reference.

ALTER TABLE files ADD COLUMN IF NOT EXISTS media_json TEXT NULL;

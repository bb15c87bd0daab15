-- clientMsgId compares byte for byte, as SQLite compares it: under a PAD SPACE collation
-- (utf8mb4_bin is one) "x" and "x " were one message on MySQL and two on SQLite, so a client
-- whose ids differ only by trailing spaces had its second message answered as a duplicate of
-- the first. VARBINARY has no padding; 256 bytes hold the 64 characters the chat node allows
-- (COLUMN_CHARS.clientMsgId, checked at the edge, at most 4 bytes each in UTF-8).
ALTER TABLE messages MODIFY client_msg_id VARBINARY(256) NOT NULL;

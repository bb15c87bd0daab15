-- The change record of a rebalance (sharding/change-record.ts): while a job moves slots off
-- this instance, triggers on every placed table write here the primary key of each row
-- written in those slots, in the writer's transaction, so the rebalancer's catch-up reads
-- what changed instead of comparing the slots again. Empty when no job runs; the triggers
-- exist only while one does.
CREATE TABLE IF NOT EXISTS slot_changes (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  tbl VARCHAR(64) NOT NULL,
  -- NULL for the folded name and email indexes, whose slot SQL cannot compute.
  slot INT UNSIGNED NULL,
  -- The primary key's values as text, a JSON array in the table's key order.
  pk VARCHAR(1024) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Per moved slot: the id of slot_changes (on its source) up to which its changes were copied.
ALTER TABLE rebalance_slots ADD COLUMN IF NOT EXISTS change_mark BIGINT UNSIGNED NULL;

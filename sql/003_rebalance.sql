-- Rebalancing (sharding/rebalance.ts): per-slot write fences on every instance, and the
-- rebalancer's persisted progress on the control instance. Where each row lives is in
-- sql/README.md.

-- A row here means "this instance must not take writes for this slot": `moving` while a
-- rebalance copies the slot's last writes away, `moved` once the slot belongs elsewhere (a
-- node with a stale map that still writes here is refused and re-reads the map). Every
-- write transaction of the sharded adapter reads its slot's row with a shared lock, so the
-- rebalancer's INSERT waits for the writes in flight and every later write sees the fence.
CREATE TABLE IF NOT EXISTS slot_fence (
  slot INT UNSIGNED NOT NULL PRIMARY KEY,
  state VARCHAR(16) NOT NULL,
  job_id VARCHAR(64) NOT NULL,
  created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One rebalance run: its plan (what moves where, the target's URL) and state.
CREATE TABLE IF NOT EXISTS rebalance_jobs (
  job_id VARCHAR(64) NOT NULL PRIMARY KEY,
  plan_json MEDIUMTEXT NOT NULL,
  state VARCHAR(16) NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Each moved slot's last finished step (planned, copied, fenced, verified, switched, cleaned),
-- so a rebalance killed at any point resumes where it stopped.
CREATE TABLE IF NOT EXISTS rebalance_slots (
  job_id VARCHAR(64) NOT NULL,
  slot INT UNSIGNED NOT NULL,
  from_id VARCHAR(64) NOT NULL,
  to_id VARCHAR(64) NOT NULL,
  step VARCHAR(16) NOT NULL,
  `rows` BIGINT UNSIGNED NOT NULL DEFAULT 0,
  checksum VARCHAR(64) NOT NULL DEFAULT '',
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (job_id, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- 0007: the replication plan each checkpoint followed (issue 4), and a scratch table the service
-- uses to measure the blob store's bandwidth at start-up.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.

-- The plan as the planner made it (decisions, reasons, costs, predicted times); NULL for
-- checkpoints taken before plans existed.
ALTER TABLE checkpoint ADD COLUMN plan jsonb NULL CHECK (plan IS NULL OR jsonb_typeof(plan) = 'object');

-- Written and read back like blob_chunk (same storage, same WAL), then deleted: what the plan's
-- cost model calls write and read bandwidth. Rows only live for the few seconds of a probe.
CREATE TABLE blob_bandwidth_probe (
  probe_id uuid    NOT NULL,
  seq      integer NOT NULL CHECK (seq >= 0),
  data     bytea   NOT NULL,
  PRIMARY KEY (probe_id, seq)
);
ALTER TABLE blob_bandwidth_probe ALTER COLUMN data SET STORAGE EXTERNAL;

-- 0009: durable checkpoints (issue 5). Blobs become content-addressed and shared by all the
-- checkpoints of a session; their bytes move to an object store (Postgres, a directory or S3)
-- under names the catalog chooses; new checkpoint triggers.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.

-- The blobs a session holds, one per distinct content. Any number of its checkpoints may list the
-- same blob; it is garbage once none does.
CREATE TABLE session_blob (
  kernel_session_id uuid        NOT NULL REFERENCES kernel_session (id) ON DELETE CASCADE,
  sha256            text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  bytes             bigint      NOT NULL CHECK (bytes >= 0),
  -- Where the bytes are in the object store (src/store/object-store.ts).
  object_name       text        NOT NULL UNIQUE,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kernel_session_id, sha256)
);

-- Which blob holds group `key` of a checkpoint: written when an upload completes (for the
-- checkpoint being written) and at commit (for unchanged groups it takes from earlier checkpoints).
CREATE TABLE checkpoint_blob (
  checkpoint_id     uuid NOT NULL REFERENCES checkpoint (id) ON DELETE CASCADE,
  key               text NOT NULL CHECK (key ~ '^[a-z0-9-]{1,64}$'),
  kernel_session_id uuid NOT NULL,
  sha256            text NOT NULL,
  PRIMARY KEY (checkpoint_id, key),
  -- Checked at commit, so deleting a whole session (which cascades to both tables in whatever
  -- order) still works; garbage collection deletes only blobs nothing lists.
  FOREIGN KEY (kernel_session_id, sha256) REFERENCES session_blob (kernel_session_id, sha256)
    DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX checkpoint_blob_content_idx ON checkpoint_blob (kernel_session_id, sha256);

-- Objects being written right now. The row exists before the first byte is sent and goes in the
-- transaction that catalogs the finished object, so garbage collection can tell an object in
-- flight from one a crash left behind.
CREATE TABLE blob_upload (
  object_name   text        PRIMARY KEY,
  checkpoint_id uuid        NOT NULL REFERENCES checkpoint (id) ON DELETE CASCADE,
  started_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blob_upload_checkpoint_idx ON blob_upload (checkpoint_id);

-- Blobs of complete checkpoints carry over; each distinct content once per session, named after
-- the row that holds it. Incomplete, failed and duplicate blob rows are dropped.
INSERT INTO session_blob (kernel_session_id, sha256, bytes, object_name, created_at)
SELECT DISTINCT ON (c.kernel_session_id, b.sha256)
       c.kernel_session_id, b.sha256, b.bytes, 'legacy/' || b.id::text, b.completed_at
FROM blob b JOIN checkpoint c ON c.id = b.checkpoint_id
WHERE b.complete AND c.state = 'complete'
ORDER BY c.kernel_session_id, b.sha256, b.completed_at, b.id;

INSERT INTO checkpoint_blob (checkpoint_id, key, kernel_session_id, sha256)
SELECT b.checkpoint_id, b.key, c.kernel_session_id, b.sha256
FROM blob b JOIN checkpoint c ON c.id = b.checkpoint_id
WHERE b.complete AND c.state = 'complete'
UNION ALL
SELECT r.checkpoint_id, r.key, c.kernel_session_id, b.sha256
FROM blob_reference r
JOIN checkpoint c ON c.id = r.checkpoint_id
JOIN blob b ON b.checkpoint_id = r.stored_in_checkpoint_id AND b.key = r.stored_key AND b.complete;

DELETE FROM blob WHERE 'legacy/' || id::text NOT IN (SELECT object_name FROM session_blob);
DROP TABLE blob_reference;

-- The Postgres object store keeps objects where blobs were: a row per object, its bytes in 8 MiB
-- chunk rows. (Rows are small: renaming the tables leaves the chunks where they are.)
ALTER TABLE blob RENAME TO blob_object;
ALTER TABLE blob_object DROP COLUMN checkpoint_id;
ALTER TABLE blob_object DROP COLUMN key;
ALTER TABLE blob_object ADD COLUMN name text;
UPDATE blob_object SET name = 'legacy/' || id::text;
ALTER TABLE blob_object ALTER COLUMN name SET NOT NULL;
ALTER TABLE blob_object RENAME CONSTRAINT blob_complete_has_digest TO blob_object_complete_has_digest;
-- The visible object of a name; incomplete rows are writes in progress or left by a crash.
CREATE UNIQUE INDEX blob_object_name_idx ON blob_object (name) WHERE complete;
CREATE INDEX blob_object_incomplete_idx ON blob_object (created_at) WHERE NOT complete;
ALTER TABLE blob_chunk RENAME TO blob_object_chunk;
ALTER TABLE blob_object_chunk RENAME COLUMN blob_id TO object_id;

-- The bandwidth probe now writes an ordinary object of the store in use.
DROP TABLE blob_bandwidth_probe;

-- New triggers: `periodic` (a background checkpoint after a kernel was active, then idle),
-- `prestop` (asked for by the user's own server as it is being stopped) and `recovery` (put
-- together when a kernel died without a checkpoint of its last cells: the last checkpoint, if any,
-- plus re-running the cells recorded after it).
ALTER TABLE checkpoint DROP CONSTRAINT checkpoint_trigger_check;
ALTER TABLE checkpoint ADD CONSTRAINT checkpoint_trigger_check
  CHECK (trigger IN ('cull', 'periodic', 'manual', 'prestop', 'verify', 'recovery'));

-- How a run ended. An agent that says it reports its end (`reports_end`) posts `ended_at` when its
-- kernel exits normally (a restart, a shutdown); a run that said it would and never did died (killed,
-- out of memory, its node gone), and the session's next kernel recovers its state. Runs of older
-- agents never count as died.
ALTER TABLE kernel_run ADD COLUMN reports_end boolean NOT NULL DEFAULT false;
ALTER TABLE kernel_run ADD COLUMN ended_at timestamptz NULL;

-- Retention deletes old checkpoints. The checkpoint the session's newest run was restored from is
-- never deleted (its cells begin that run's history, which a crash restore re-runs); an older run
-- whose checkpoint goes keeps only its own cells.
ALTER TABLE kernel_run DROP CONSTRAINT kernel_run_restored_from_checkpoint_fk;
ALTER TABLE kernel_run
  ADD CONSTRAINT kernel_run_restored_from_checkpoint_fk
  FOREIGN KEY (restored_from_checkpoint_id) REFERENCES checkpoint (id) ON DELETE SET NULL;

-- "Checkpoints of a session, newest first" for retention.
CREATE INDEX checkpoint_session_created_idx ON checkpoint (kernel_session_id, created_at DESC);

-- When the service received each cell record, by the database clock: "ran cells since its last
-- checkpoint, idle since" is decided on one clock, whatever the kernel host's clock says.
ALTER TABLE cell_execution ADD COLUMN recorded_at timestamptz NOT NULL DEFAULT now();

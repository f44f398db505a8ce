-- 0002: checkpoints of a session's variables and their restore bookkeeping.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.

CREATE TABLE checkpoint (
  id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  kernel_session_id    uuid        NOT NULL REFERENCES kernel_session (id) ON DELETE CASCADE,
  kernel_run_id        uuid        NOT NULL REFERENCES kernel_run (id) ON DELETE CASCADE,
  state                text        NOT NULL DEFAULT 'writing'
                                   CHECK (state IN ('writing', 'complete', 'failed')),
  trigger              text        NOT NULL CHECK (trigger IN ('cull', 'manual', 'verify')),
  created_at           timestamptz NOT NULL DEFAULT now(),
  completed_at         timestamptz NULL,
  -- The agent's manifest, as it sent it; set at commit.
  manifest             jsonb       NULL,
  -- The session's whole cell history up to this checkpoint (agent protocol `Cell` objects); set at commit.
  cells                jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(cells) = 'array'),
  bytes_stored         bigint      NOT NULL DEFAULT 0 CHECK (bytes_stored >= 0),
  error                text        NULL,
  restore_state        text        NOT NULL DEFAULT 'none'
                                   CHECK (restore_state IN ('none', 'pending', 'claimed', 'restored', 'failed')),
  restored_into_run_id uuid        NULL REFERENCES kernel_run (id) ON DELETE SET NULL,
  restore_report       jsonb       NULL,
  -- A checkpoint is visible only once committed: then it has its manifest and completion time.
  CONSTRAINT checkpoint_complete_is_committed
    CHECK (state <> 'complete' OR (manifest IS NOT NULL AND completed_at IS NOT NULL)),
  -- Only a complete checkpoint can be restored.
  CONSTRAINT checkpoint_restore_needs_complete
    CHECK (restore_state = 'none' OR state = 'complete'),
  CONSTRAINT checkpoint_claim_names_run
    CHECK (restore_state NOT IN ('claimed', 'restored', 'failed') OR restored_into_run_id IS NOT NULL)
);

-- "Latest complete checkpoint of a session".
CREATE INDEX checkpoint_latest_complete_idx
  ON checkpoint (kernel_session_id, completed_at DESC, id DESC) WHERE state = 'complete';

-- At most one restore waits for a session's next kernel.
CREATE UNIQUE INDEX checkpoint_one_pending_restore_idx
  ON checkpoint (kernel_session_id) WHERE restore_state = 'pending';

-- Foreign keys from kernel_run need their own indexes for deletes of runs to stay cheap.
CREATE INDEX checkpoint_run_idx ON checkpoint (kernel_run_id);
CREATE INDEX checkpoint_restored_into_run_idx ON checkpoint (restored_into_run_id)
  WHERE restored_into_run_id IS NOT NULL;

-- A run's history starts with the cells of the checkpoint it was restored from, so that
-- checkpoint cannot be deleted on its own (NO ACTION); deleting the whole session still cascades.
ALTER TABLE kernel_run
  ADD CONSTRAINT kernel_run_restored_from_checkpoint_fk
  FOREIGN KEY (restored_from_checkpoint_id) REFERENCES checkpoint (id);

CREATE INDEX kernel_run_restored_from_idx ON kernel_run (restored_from_checkpoint_id)
  WHERE restored_from_checkpoint_id IS NOT NULL;

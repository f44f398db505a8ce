-- 0006: incremental checkpoints (issue 3). A checkpoint stores only the groups that changed since
-- the session's previous checkpoint; each unchanged group refers to the blob an earlier checkpoint
-- of the same session wrote (never to another reference).
-- Forward-only: never edit this file once applied; add a new numbered migration instead.

CREATE TABLE blob_reference (
  -- The checkpoint whose manifest lists group `key` without writing it.
  checkpoint_id           uuid NOT NULL REFERENCES checkpoint (id) ON DELETE CASCADE,
  key                     text NOT NULL CHECK (key ~ '^[a-z0-9-]{1,64}$'),
  -- Where the bytes are. A checkpoint whose blobs are referenced cannot be deleted on its own.
  -- Checked at commit (DEFERRABLE), so deleting a whole session, which cascades to the
  -- referencing and the referenced checkpoint in whatever order, still works.
  stored_in_checkpoint_id uuid NOT NULL REFERENCES checkpoint (id) DEFERRABLE INITIALLY DEFERRED,
  stored_key              text NOT NULL CHECK (stored_key ~ '^[a-z0-9-]{1,64}$'),
  PRIMARY KEY (checkpoint_id, key)
);

-- "Is this checkpoint still referenced?" (retention, deletes).
CREATE INDEX blob_reference_stored_in_idx ON blob_reference (stored_in_checkpoint_id);

-- Bytes a checkpoint referenced instead of writing (bytes_stored counts only what it wrote).
ALTER TABLE checkpoint ADD COLUMN bytes_reused bigint NOT NULL DEFAULT 0 CHECK (bytes_reused >= 0);

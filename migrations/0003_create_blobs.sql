-- 0003: checkpoint blobs stored in Postgres (the default BlobStore), in chunks.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.

-- One attempt to store a blob. Rows are written while the bytes stream in (complete = false) and
-- flipped to complete in the transaction that also removes the earlier complete blob of that key,
-- so a failed or interrupted write never damages the blob it would have replaced. Readers only
-- ever see complete rows; an incomplete row left by a crash is invisible garbage.
CREATE TABLE blob (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  checkpoint_id uuid        NOT NULL REFERENCES checkpoint (id) ON DELETE CASCADE,
  key           text        NOT NULL CHECK (key ~ '^[a-z0-9-]{1,64}$'),
  bytes         bigint      NULL CHECK (bytes >= 0),
  sha256        text        NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  complete      boolean     NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz NULL,
  CONSTRAINT blob_complete_has_digest
    CHECK (NOT complete OR (bytes IS NOT NULL AND sha256 IS NOT NULL AND completed_at IS NOT NULL))
);

-- The visible blob of a key: at most one per checkpoint.
CREATE UNIQUE INDEX blob_complete_key_idx ON blob (checkpoint_id, key) WHERE complete;
-- All attempts of a checkpoint (deletes, garbage collection of abandoned writes).
CREATE INDEX blob_checkpoint_idx ON blob (checkpoint_id);

-- The bytes of a blob, 8 MiB per row as the writer fills them.
CREATE TABLE blob_chunk (
  blob_id uuid    NOT NULL REFERENCES blob (id) ON DELETE CASCADE,
  seq     integer NOT NULL CHECK (seq >= 0),
  data    bytea   NOT NULL,
  PRIMARY KEY (blob_id, seq)
);

-- Pickled arrays barely compress, and pglz would spend CPU finding that out on every chunk:
-- store out of line, uncompressed.
ALTER TABLE blob_chunk ALTER COLUMN data SET STORAGE EXTERNAL;

-- 0001: kernel sessions, their runs and the cells each run executed.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.
-- The runner (src/store/postgres/migrate.ts) wraps this file in one transaction.

-- What a user thinks of as "my notebook's kernel". It outlives kernels, servers and nodes.
CREATE TABLE kernel_session (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_name     text        NOT NULL CHECK (user_name <> ''),
  -- '' is the user's default server.
  server_name   text        NOT NULL,
  notebook_path text        NOT NULL,
  kernel_name   text        NOT NULL CHECK (kernel_name <> ''),
  created_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT kernel_session_key_unique UNIQUE (user_name, server_name, notebook_path, kernel_name)
);

-- One kernel process of a session, registered by the agent when it loads.
-- restored_from_checkpoint_id gets its foreign key in 0002, once checkpoint exists.
CREATE TABLE kernel_run (
  id                          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  kernel_session_id           uuid        NOT NULL REFERENCES kernel_session (id) ON DELETE CASCADE,
  kernel_id                   text        NOT NULL,
  server_url                  text        NOT NULL,
  agent_version               text        NOT NULL,
  started_at                  timestamptz NOT NULL DEFAULT now(),
  restored_from_checkpoint_id uuid        NULL
);

-- Runs of a session newest first; the unique key of kernel_session serves "runs of a server".
CREATE INDEX kernel_run_session_started_idx ON kernel_run (kernel_session_id, started_at DESC);

-- One cell the user executed in a run, in order. The agent retries batches, so (run, seq) is the key.
CREATE TABLE cell_execution (
  kernel_run_id   uuid             NOT NULL REFERENCES kernel_run (id) ON DELETE CASCADE,
  seq             integer          NOT NULL CHECK (seq >= 0),
  execution_count integer          NULL,
  code            text             NOT NULL,
  started_at      timestamptz      NOT NULL,
  duration_s      double precision NOT NULL CHECK (duration_s >= 0),
  status          text             NOT NULL CHECK (status IN ('ok', 'error')),
  -- {"ename": …, "evalue": …} when status = 'error'.
  error           jsonb            NULL,
  created         text[]           NOT NULL DEFAULT '{}',
  deleted         text[]           NOT NULL DEFAULT '{}',
  rebound         text[]           NOT NULL DEFAULT '{}',
  PRIMARY KEY (kernel_run_id, seq)
);

-- 0004: what each cell read, changed in place, and which co-variable groups it left (agent
-- protocol "Dependency fields", issue 3). NULL means "not reported" (rows written before this
-- migration, or by an older agent): readers then assume the conservative meaning.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.
ALTER TABLE cell_execution
  ADD COLUMN read          text[]  NULL,
  ADD COLUMN read_all      boolean NULL,
  ADD COLUMN modified      text[]  NULL,
  -- [["a", "b"], ["x"]]: a list of groups, each a sorted list of names.
  ADD COLUMN groups        jsonb   NULL CHECK (groups IS NULL OR jsonb_typeof(groups) = 'array'),
  ADD COLUMN effects_known boolean NULL,
  ADD COLUMN timing_known  boolean NULL;

-- 0005: the cost facts of each cell's co-variable groups (agent protocol "Dependency fields",
-- `group_costs`, issue 3): per group its serialized size, whether that size is exact, whether it
-- can be serialized and which members cannot. NULL means "not reported" (rows written before this
-- migration, or by an older agent): nothing is known about the groups' costs.
-- Forward-only: never edit this file once applied; add a new numbered migration instead.
ALTER TABLE cell_execution
  -- [{"bytes": 8000153, "bytes_exact": true, "serializable": true, "unserializable": []}]: one
  -- entry per group of `groups`, in the same order.
  ADD COLUMN group_costs jsonb NULL CONSTRAINT cell_execution_group_costs_check CHECK (
    group_costs IS NULL
    OR (jsonb_typeof(group_costs) = 'array' AND groups IS NOT NULL
        AND jsonb_array_length(group_costs) = jsonb_array_length(groups))
  );

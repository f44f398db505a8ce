-- 0008: the notebook cell's id of each cell execution (agent protocol `Cell.cell_id`, issue 4).
-- JupyterLab sends it with every execute request; the planner looks the cell's tags
-- (`never-rerun`, `always-store`) up by it in the notebook, since a kernel never sees tags.
-- NULL: not known (rows written before this migration, an older agent, a frontend that does not
-- send it).
-- Forward-only: never edit this file once applied; add a new numbered migration instead.
ALTER TABLE cell_execution ADD COLUMN cell_id text NULL;

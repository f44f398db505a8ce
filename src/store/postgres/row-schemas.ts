/**
 * Rows read back from Postgres, checked with zod and turned into the store's types.
 *
 * The database is a process boundary (STYLE 7.3 habit 6): a column renamed by a later migration,
 * a hand edit or a jsonb written by an older version must fail loudly here, not deep inside a restore.
 */
import { z } from 'zod';
import { ResumeError } from '../../errors.js';
import type {
  CellRecord,
  Checkpoint,
  CheckpointSummary,
  GroupCost,
  KernelRun,
  KernelSession,
  StoredBlob,
} from '../checkpoint-store.js';
import { CHECKPOINT_TRIGGERS } from '../checkpoint-store.js';

/** The columns of `checkpoint` that toCheckpoint reads. */
export const CHECKPOINT_COLUMNS = `id, kernel_session_id, kernel_run_id, state, trigger, created_at, completed_at, manifest,
  cells, plan, bytes_stored, bytes_reused, error, restore_state, restored_into_run_id, restore_report`;

/** A UUID as Postgres prints it. Ids that do not look like this cannot exist in the store. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `id` has the syntax of a UUID (so Postgres will not reject it as input). */
export function isUuid(id: unknown): id is string {
  return typeof id === 'string' && UUID.test(id);
}

const uuid = z.string().regex(UUID);
/** pg returns bigint as a string; our sizes stay far below 2^53. */
const bigintNumber = z.union([z.string().regex(/^\d+$/), z.number().int()]).transform(Number);
const cellError = z.object({ ename: z.string(), evalue: z.string() }).nullable();
/** One entry of `group_costs` (jsonb, the agent protocol's snake_case form) as a GroupCost. */
const groupCost = z
  .object({
    bytes: z.number().int().nonnegative(),
    bytes_exact: z.boolean(),
    serializable: z.boolean(),
    unserializable: z.array(z.object({ name: z.string(), reason: z.string() })),
  })
  .transform(
    (c): GroupCost => ({ bytes: c.bytes, bytesExact: c.bytes_exact, serializable: c.serializable, unserializable: c.unserializable }),
  );

const sessionRow = z.object({
  id: uuid,
  user_name: z.string(),
  server_name: z.string(),
  notebook_path: z.string(),
  kernel_name: z.string(),
  created_at: z.date(),
});

const runRow = z.object({
  id: uuid,
  kernel_session_id: uuid,
  kernel_id: z.string(),
  server_url: z.string(),
  agent_version: z.string(),
  started_at: z.date(),
  restored_from_checkpoint_id: uuid.nullable(),
  // Absent from rows selected before migration 0009's columns existed in a query's list.
  reports_end: z.boolean().optional(),
  ended_at: z.date().nullable().optional(),
});

const cellRow = z.object({
  seq: z.number().int(),
  execution_count: z.number().int().nullable(),
  code: z.string(),
  started_at: z.date(),
  duration_s: z.number(),
  status: z.enum(['ok', 'error']),
  error: cellError,
  created: z.array(z.string()),
  deleted: z.array(z.string()),
  rebound: z.array(z.string()),
  // The dependency fields (agent protocol, issue 3). Rows and checkpoints stored before them, or
  // sent by an older agent, lack them (NULL in `cell_execution`, absent in checkpoint jsonb):
  // absent stays absent, and readers give it the protocol's conservative meaning
  // (src/history/cell-record.ts, cellDependenciesOf).
  read: z.array(z.string()).nullish(),
  read_all: z.boolean().nullish(),
  modified: z.array(z.string()).nullish(),
  groups: z.array(z.array(z.string())).nullish(),
  // Cost facts of `groups` (migration 0005); NULL or absent: not reported.
  group_costs: z.array(groupCost).nullish(),
  effects_known: z.boolean().nullish(),
  timing_known: z.boolean().nullish(),
  // The notebook cell's id (migration 0008); NULL or absent: not known.
  cell_id: z.string().nullish(),
});

/** A cell inside `checkpoint.cells` (jsonb): the agent protocol's `Cell`, dates as ISO strings. */
const storedCell = cellRow.extend({ started_at: z.iso.datetime({ offset: true }).transform((s) => new Date(s)) });

const checkpointBase = {
  id: uuid,
  kernel_session_id: uuid,
  kernel_run_id: uuid,
  state: z.enum(['writing', 'complete', 'failed']),
  trigger: z.enum(CHECKPOINT_TRIGGERS),
  created_at: z.date(),
  completed_at: z.date().nullable(),
  bytes_stored: bigintNumber,
  bytes_reused: bigintNumber,
  error: z.string().nullable(),
  restore_state: z.enum(['none', 'pending', 'claimed', 'restored', 'failed']),
  restored_into_run_id: uuid.nullable(),
  restore_report: z.unknown(),
};

const checkpointRow = z.object({ ...checkpointBase, manifest: z.unknown(), plan: z.unknown(), cells: z.array(storedCell) });
const checkpointSummaryRow = z.object({
  ...checkpointBase,
  user_name: z.string(),
  server_name: z.string(),
  notebook_path: z.string(),
  kernel_name: z.string(),
});

const blobRow = z.object({ key: z.string(), bytes: bigintNumber, sha256: z.string().regex(/^[0-9a-f]{64}$/) });

/** Checks a row against a schema. @throws ResumeError RESUME_ERR_STORE_ROW_INVALID */
function parseRow<T>(schema: z.ZodType<T>, row: unknown, table: string): T {
  const result = schema.safeParse(row);
  if (result.success) return result.data;
  throw new ResumeError('RESUME_ERR_STORE_ROW_INVALID', `a ${table} row read from the database has an unexpected shape`, {
    status: 500,
    hint: 'The schema differs from what this version expects: check that migrations ran and nothing edited the tables by hand.',
    context: { table, issues: result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) },
  });
}

/** A `kernel_session` row as a KernelSession. */
export function toKernelSession(row: unknown): KernelSession {
  const r = parseRow(sessionRow, row, 'kernel_session');
  return {
    id: r.id,
    user: r.user_name,
    server: r.server_name,
    notebookPath: r.notebook_path,
    kernelName: r.kernel_name,
    createdAt: r.created_at,
  };
}

/** A `kernel_run` row as a KernelRun. */
export function toKernelRun(row: unknown): KernelRun {
  const r = parseRow(runRow, row, 'kernel_run');
  return {
    id: r.id,
    sessionId: r.kernel_session_id,
    kernelId: r.kernel_id,
    serverUrl: r.server_url,
    agentVersion: r.agent_version,
    startedAt: r.started_at,
    restoredFromCheckpointId: r.restored_from_checkpoint_id,
    reportsEnd: r.reports_end ?? false,
    endedAt: r.ended_at ?? null,
  };
}

/** A `cell_execution` row as a CellRecord. */
export function toCellRecord(row: unknown): CellRecord {
  return fromCellShape(parseRow(cellRow, row, 'cell_execution'));
}

/** A `checkpoint` row (all columns) as a Checkpoint. */
export function toCheckpoint(row: unknown): Checkpoint {
  const r = parseRow(checkpointRow, row, 'checkpoint');
  return { ...checkpointFields(r), manifest: r.manifest ?? null, plan: r.plan ?? null, cells: r.cells.map(fromCellShape) };
}

/** A `checkpoint` row without manifest and cells, joined with its session's key. */
export function toCheckpointSummary(row: unknown): CheckpointSummary {
  const r = parseRow(checkpointSummaryRow, row, 'checkpoint');
  return {
    ...checkpointFields(r),
    user: r.user_name,
    server: r.server_name,
    notebookPath: r.notebook_path,
    kernelName: r.kernel_name,
  };
}

/** A complete `blob` row as a StoredBlob. */
export function toStoredBlob(row: unknown): StoredBlob {
  return parseRow(blobRow, row, 'blob');
}

/**
 * A CellRecord as it is kept in jsonb (`checkpoint.cells`, and the batch given to appendCells):
 * the agent protocol's `Cell`, snake_case, with ISO dates. Dependency fields the record lacks stay
 * out (undefined is dropped by JSON.stringify), so an old record is not turned into a claim.
 *
 * #### Notes
 * appendCells only reads the columns of `cell_execution` from this JSON, so the dependency fields
 * are kept in `checkpoint.cells` (jsonb) but dropped for a run's own cells until a migration adds
 * their columns.
 */
export function cellToJson(cell: CellRecord): Record<string, unknown> {
  return {
    seq: cell.seq,
    execution_count: cell.executionCount,
    code: cell.code,
    cell_id: cell.cellId,
    started_at: cell.startedAt.toISOString(),
    duration_s: cell.durationS,
    status: cell.status,
    error: cell.error,
    created: cell.created,
    deleted: cell.deleted,
    rebound: cell.rebound,
    read: cell.read,
    read_all: cell.readAll,
    modified: cell.modified,
    groups: cell.groups,
    group_costs: cell.groupCosts?.map((c) => ({
      bytes: c.bytes,
      bytes_exact: c.bytesExact,
      serializable: c.serializable,
      unserializable: c.unserializable,
    })),
    effects_known: cell.effectsKnown,
    timing_known: cell.timingKnown,
  };
}

type CellShape = z.infer<typeof cellRow>;

function fromCellShape(r: CellShape): CellRecord {
  return {
    seq: r.seq,
    executionCount: r.execution_count,
    code: r.code,
    startedAt: r.started_at,
    durationS: r.duration_s,
    status: r.status,
    error: r.error,
    created: r.created,
    deleted: r.deleted,
    rebound: r.rebound,
    // Only the fields the row has: a CellRecord without them means "unknown" (see cellRow).
    ...(r.read == null ? {} : { read: r.read }),
    ...(r.read_all == null ? {} : { readAll: r.read_all }),
    ...(r.modified == null ? {} : { modified: r.modified }),
    ...(r.groups == null ? {} : { groups: r.groups }),
    ...(r.group_costs == null ? {} : { groupCosts: r.group_costs }),
    ...(r.effects_known == null ? {} : { effectsKnown: r.effects_known }),
    ...(r.timing_known == null ? {} : { timingKnown: r.timing_known }),
    ...(r.cell_id == null ? {} : { cellId: r.cell_id }),
  };
}

function checkpointFields(r: z.infer<z.ZodObject<typeof checkpointBase>>): Omit<Checkpoint, 'manifest' | 'cells' | 'plan'> {
  return {
    id: r.id,
    sessionId: r.kernel_session_id,
    runId: r.kernel_run_id,
    state: r.state,
    trigger: r.trigger,
    createdAt: r.created_at,
    completedAt: r.completed_at,
    bytesStored: r.bytes_stored,
    bytesReused: r.bytes_reused,
    error: r.error,
    restoreState: r.restore_state,
    restoredIntoRunId: r.restored_into_run_id,
    restoreReport: r.restore_report ?? null,
  };
}

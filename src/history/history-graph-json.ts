/**
 * The JSON form of a history graph: what `GET …/api/sessions/{id}/graph` answers and what is
 * persisted. Plain data, stable, versioned by `formatVersion`:
 *
 * ```json
 * {
 *   "formatVersion": 1,
 *   "cellExecutions": [
 *     {"id": "cell:0", "index": 0, "seq": 1, "executionCount": 1, "code": "x = [1]", "durationS": 0.001,
 *      "status": "ok", "timingKnown": true, "effectsKnown": true},
 *     {"id": "cell:1", "index": 1, "seq": 2, "executionCount": 2, "code": "x.append(2)", "durationS": 0.001,
 *      "status": "ok", "timingKnown": true, "effectsKnown": true}
 *   ],
 *   "variableSnapshots": [
 *     {"id": "x@0", "names": ["x"], "version": 0, "deleted": false,
 *      "bytes": 17, "bytesExact": true, "serializable": true, "unserializable": []},
 *     {"id": "x@1", "names": ["x"], "version": 1, "deleted": false}
 *   ],
 *   "edges": [
 *     {"kind": "write", "from": "cell:0", "to": "x@0"},
 *     {"kind": "read", "from": "x@0", "to": "cell:1"},
 *     {"kind": "write", "from": "cell:1", "to": "x@1"}
 *   ]
 * }
 * ```
 *
 * - `cellExecutions`: every CellExecution, by `index` (0, 1, 2, … without gaps).
 * - `variableSnapshots`: every VariableSnapshot, by `version`, then `id`. `bytes`, `bytesExact`,
 *   `serializable` and `unserializable` are the group's cost facts as the agent reported them: all
 *   four or none, none meaning unknown (`x@1` above: its record reported no costs).
 * - `edges`: per cell, in cell order: its `read` edges (snapshot → cell), then its `write` edges
 *   (cell → snapshot), each by snapshot `version`, then `id`. Every snapshot has exactly one
 *   `write` edge, from the cell whose index is its `version`.
 * - Nothing derived is stored: a snapshot is *active* when it is not deleted and no later snapshot
 *   has one of its names (`HistoryGraph.activeSnapshots()`).
 *
 * #### Notes
 * The cost facts came after format 1 was first written, as optional fields: a graph stored without
 * them loads (its snapshots' costs are unknown), and a reader that predates them drops them
 * (zod strips unknown keys) rather than failing, so the format version stayed 1.
 */
import { z } from 'zod';
import { ResumeError } from '../errors.js';

/** The `formatVersion` this code writes and reads. */
export const HISTORY_GRAPH_FORMAT_VERSION = 1;

const cellExecutionJson = z.object({
  id: z.string().min(1),
  index: z.number().int().nonnegative(),
  seq: z.number().int().nonnegative(),
  executionCount: z.number().int().nullable(),
  code: z.string(),
  durationS: z.number().nonnegative(),
  status: z.enum(['ok', 'error']),
  timingKnown: z.boolean(),
  effectsKnown: z.boolean(),
});

const variableSnapshotJson = z
  .object({
    id: z.string().min(1),
    names: z.array(z.string().min(1)).min(1),
    version: z.number().int().nonnegative(),
    deleted: z.boolean(),
    bytes: z.number().int().nonnegative().optional(),
    bytesExact: z.boolean().optional(),
    serializable: z.boolean().optional(),
    unserializable: z.array(z.object({ name: z.string(), reason: z.string() })).optional(),
  })
  .refine(
    (s) => {
      const present = [s.bytes, s.bytesExact, s.serializable, s.unserializable].filter((f) => f !== undefined).length;
      return present === 0 || present === 4;
    },
    { message: 'bytes, bytesExact, serializable and unserializable are all present or all absent' },
  );

const historyEdgeJson = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('read'), from: z.string(), to: z.string() }),
  z.object({ kind: z.literal('write'), from: z.string(), to: z.string() }),
]);

/** Checks the shape of a history graph's JSON (the graph's own invariants are checked on load). */
export const historyGraphJsonSchema = z.object({
  formatVersion: z.literal(HISTORY_GRAPH_FORMAT_VERSION),
  cellExecutions: z.array(cellExecutionJson),
  variableSnapshots: z.array(variableSnapshotJson),
  edges: z.array(historyEdgeJson),
});

/** A history graph as plain data (see the module comment for the shape and its order). */
export type HistoryGraphJson = z.infer<typeof historyGraphJsonSchema>;
/** A `read` (snapshot → cell) or `write` (cell → snapshot) edge in a HistoryGraphJson. */
export type HistoryEdgeJson = z.infer<typeof historyEdgeJson>;

/**
 * The error for a graph JSON that cannot be loaded.
 * @param reason what is wrong, for the message.
 * @param cause the underlying error, if any.
 */
export function invalidHistoryGraph(reason: string, cause?: unknown): ResumeError {
  return new ResumeError('RESUME_ERR_HISTORY_GRAPH_INVALID', `a stored history graph cannot be loaded: ${reason}`, {
    status: 500,
    hint: "The graph is derived data: rebuild it from the session's cell history (HistoryGraph.fromCells) and store it again.",
    context: { reason },
    cause,
  });
}

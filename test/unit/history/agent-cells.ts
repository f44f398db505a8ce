/**
 * Test fixtures for the history graph: cell records written the way the agent sends them, and a
 * one-line-per-cell rendering of a graph to compare against.
 *
 * Pictures in the tests use this notation:
 *
 *   [3]        cell execution 3 (index in the session's history, from 0)
 *   x@0        variable snapshot of the group {x} written by cell 0; `dlist,l1@3` is one snapshot
 *              of the group {dlist, l1}
 *   *          after a snapshot: it is active (holds a current variable)
 *   x@4 (del)  a deleted snapshot
 *   a --> b    an edge: snapshot --> cell is a read, cell --> snapshot a write
 */
import { cellSchema } from '../../../src/agent/agent-messages.js';
import { toCellRecord } from '../../../src/history/cell-record.js';
import type { HistoryGraph } from '../../../src/history/history-graph.js';
import type { CellRecord } from '../../../src/store/checkpoint-store.js';

/** A cell as the agent's JSON has it, minus what the tests never vary. */
export type AgentCellFields = {
  status?: 'ok' | 'error';
  error?: { ename: string; evalue: string } | null;
  duration_s?: number;
  created?: string[];
  deleted?: string[];
  rebound?: string[];
  read?: string[];
  read_all?: boolean;
  modified?: string[];
  groups?: string[][];
  group_costs?: Array<{ bytes: number; bytes_exact: boolean; serializable: boolean; unserializable: Array<{ name: string; reason: string }> }>;
  effects_known?: boolean;
  timing_known?: boolean;
};

/**
 * The records of a session, from `[code, fields]` pairs: each goes through the agent protocol's
 * `cellSchema` and `toCellRecord`, as the service receives it. Unless a pair says otherwise, a cell
 * comes from a current agent (`read_all: false`, `effects_known: true`, `timing_known: true`) and
 * ran in 1 ms; `seq` and the execution count count from 1.
 */
export function session(...cells: Array<[code: string, fields?: AgentCellFields]>): CellRecord[] {
  return cells.map(([code, fields = {}], i) =>
    toCellRecord(
      cellSchema.parse({
        seq: i + 1,
        execution_count: i + 1,
        code,
        started_at: new Date(Date.UTC(2026, 10, 21, 19, 30, i)).toISOString(),
        duration_s: 0.001,
        status: 'ok',
        error: null,
        created: [],
        deleted: [],
        rebound: [],
        read: [],
        read_all: false,
        modified: [],
        groups: [],
        effects_known: true,
        timing_known: true,
        ...fields,
      }),
    ),
  );
}

/**
 * A record from an agent older than the dependency fields: the JSON has none of them.
 * @param seq the record's seq (and execution count).
 */
export function oldAgentCell(seq: number, code: string, fields: Pick<AgentCellFields, 'created' | 'deleted' | 'rebound'> = {}): CellRecord {
  return toCellRecord(
    cellSchema.parse({
      seq,
      execution_count: seq,
      code,
      started_at: new Date(Date.UTC(2026, 10, 21, 19, 30, seq)).toISOString(),
      duration_s: 0.5,
      status: 'ok',
      error: null,
      created: [],
      deleted: [],
      rebound: [],
      ...fields,
    }),
  );
}

/**
 * The graph, one line per cell: `<index>: <reads> -> <writes>`, `-` for none, each list by
 * version then id, deleted snapshots marked `(del)`. E.g. `2: x@0 z@1 -> l1@2 x@2`.
 */
export function describeGraph(graph: HistoryGraph): string[] {
  const list = (ids: string[]): string => (ids.length === 0 ? '-' : ids.join(' '));
  return graph.cellExecutions.map(
    (cell) =>
      `${cell.index}: ${list(graph.readsOf(cell).map((s) => s.id))} -> ${list(
        graph.writesOf(cell).map((s) => (s.deleted ? `${s.id} (del)` : s.id)),
      )}`,
  );
}

/** The ids of the active snapshots, by version then id. */
export function activeIds(graph: HistoryGraph): string[] {
  return graph.activeSnapshots().map((s) => s.id);
}

/** The indexes of `cellsToRecompute(ids)`. */
export function recompute(graph: HistoryGraph, ids: string[]): number[] {
  return graph.cellsToRecompute(ids).map((c) => c.index);
}

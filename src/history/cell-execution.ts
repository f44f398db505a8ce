/**
 * CellExecution: one run of one cell, a node of the history graph.
 */
import type { CellRecord } from '../store/checkpoint-store.js';
import { cellDependenciesOf } from './cell-record.js';

/** The id of a cell execution: `cell:<index>`, e.g. `cell:0`. */
export type CellExecutionId = string;

/** One cell the user ran, in the order of the session's history. Immutable. */
export type CellExecution = Readonly<{
  /** `cell:<index>` (see `cellExecutionId`). */
  id: CellExecutionId;
  /**
   * Position in the session's history, from 0 (ElasticNotebook's `cell_num`). Not `seq`: a
   * session's history spans kernel runs, and `seq` starts at 1 in every run.
   */
  index: number;
  /** The record's `seq` within its kernel run. */
  seq: number;
  /** IPython's execution count; null for a cell run with `store_history=False`. */
  executionCount: number | null;
  code: string;
  /** Wall time of the cell: what re-running it costs. Meaningless when `timingKnown` is false. */
  durationS: number;
  status: 'ok' | 'error';
  /** False when the duration was not measured (a cell rebuilt from IPython's history). */
  timingKnown: boolean;
  /**
   * False when the cell's reads and writes are unknown (a cell rebuilt from IPython's history, or
   * recorded by an agent older than the dependency fields): it reads, and may modify, everything.
   */
  effectsKnown: boolean;
}>;

/** The id of the cell execution at `index` in the session's history. */
export function cellExecutionId(index: number): CellExecutionId {
  return `cell:${index}`;
}

/** The frozen cell execution node for a record that is the `index`-th of the session's history. */
export function makeCellExecution(record: CellRecord, index: number): CellExecution {
  const dependencies = cellDependenciesOf(record);
  return Object.freeze({
    id: cellExecutionId(index),
    index,
    seq: record.seq,
    executionCount: record.executionCount,
    code: record.code,
    durationS: record.durationS,
    status: record.status,
    timingKnown: dependencies.timingKnown,
    effectsKnown: dependencies.effectsKnown,
  });
}

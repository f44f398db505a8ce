import type { Cell } from '../agent/agent-messages.js';
import type { CellRecord } from '../store/checkpoint-store.js';

/** Converts a cell as the agent reports it (snake_case JSON) into the stored record. */
export function toCellRecord(cell: Cell): CellRecord {
  return {
    seq: cell.seq,
    executionCount: cell.execution_count,
    code: cell.code,
    startedAt: new Date(cell.started_at),
    durationS: cell.duration_s,
    status: cell.status,
    error: cell.error,
    created: cell.created,
    deleted: cell.deleted,
    rebound: cell.rebound,
  };
}

/** Converts a stored record back into the agent's form, e.g. for a restore's re-run list. */
export function toAgentCell(record: CellRecord): Cell {
  return {
    seq: record.seq,
    execution_count: record.executionCount,
    code: record.code,
    started_at: record.startedAt.toISOString(),
    duration_s: record.durationS,
    status: record.status,
    error: record.error,
    created: record.created,
    deleted: record.deleted,
    rebound: record.rebound,
  };
}

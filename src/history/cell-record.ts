import { cellDependencySchema, type AgentGroupCost, type Cell } from '../agent/agent-messages.js';
import type { CellRecord, GroupCost } from '../store/checkpoint-store.js';

/** Converts a cell as the agent reports it (snake_case JSON) into the stored record. */
export function toCellRecord(cell: Cell): CellRecord {
  return {
    seq: cell.seq,
    executionCount: cell.execution_count,
    code: cell.code,
    ...(cell.cell_id == null ? {} : { cellId: cell.cell_id }),
    startedAt: new Date(cell.started_at),
    durationS: cell.duration_s,
    status: cell.status,
    error: cell.error,
    created: cell.created,
    deleted: cell.deleted,
    rebound: cell.rebound,
    read: cell.read,
    readAll: cell.read_all,
    modified: cell.modified,
    groups: cell.groups,
    // Absent stays absent: "not reported" is not "no costs".
    ...(cell.group_costs === undefined ? {} : { groupCosts: cell.group_costs.map(toGroupCost) }),
    effectsKnown: cell.effects_known,
    timingKnown: cell.timing_known,
  };
}

function toGroupCost(cost: AgentGroupCost): GroupCost {
  return {
    bytes: cost.bytes,
    bytesExact: cost.bytes_exact,
    serializable: cost.serializable,
    unserializable: cost.unserializable.map(({ name, reason }) => ({ name, reason })),
  };
}

function toAgentGroupCost(cost: GroupCost): AgentGroupCost {
  return {
    bytes: cost.bytes,
    bytes_exact: cost.bytesExact,
    serializable: cost.serializable,
    unserializable: cost.unserializable.map(({ name, reason }) => ({ name, reason })),
  };
}

/**
 * Converts a stored record back into the agent's form, e.g. for a restore's re-run list. A record
 * stored without dependency fields gets their conservative defaults (see `cellDependenciesOf`).
 */
export function toAgentCell(record: CellRecord): Cell {
  const dependencies = cellDependenciesOf(record);
  return {
    seq: record.seq,
    execution_count: record.executionCount,
    code: record.code,
    ...(record.cellId === undefined ? {} : { cell_id: record.cellId }),
    started_at: record.startedAt.toISOString(),
    duration_s: record.durationS,
    status: record.status,
    error: record.error,
    created: record.created,
    deleted: record.deleted,
    rebound: record.rebound,
    read: dependencies.read,
    read_all: dependencies.readAll,
    modified: dependencies.modified,
    groups: dependencies.groups,
    ...(record.groupCosts === undefined ? {} : { group_costs: record.groupCosts.map(toAgentGroupCost) }),
    effects_known: dependencies.effectsKnown,
    timing_known: dependencies.timingKnown,
  };
}

/** The dependency fields of a cell record, every one present. */
export type CellDependencies = Required<
  Pick<CellRecord, 'read' | 'readAll' | 'modified' | 'groups' | 'effectsKnown' | 'timingKnown'>
>;

/**
 * The dependency fields of a record, with the protocol's conservative default for each one the
 * record lacks (it predates them). The defaults are those of `cellDependencySchema`, so the agent's
 * JSON and stored records can never disagree on what a missing field means.
 */
export function cellDependenciesOf(record: CellRecord): CellDependencies {
  const fields = cellDependencySchema.parse({
    read: record.read,
    read_all: record.readAll,
    modified: record.modified,
    groups: record.groups,
    effects_known: record.effectsKnown,
    timing_known: record.timingKnown,
  });
  return {
    read: fields.read,
    readAll: fields.read_all,
    modified: fields.modified,
    groups: fields.groups,
    effectsKnown: fields.effects_known,
    timingKnown: fields.timing_known,
  };
}

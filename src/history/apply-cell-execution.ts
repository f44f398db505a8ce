/**
 * applyCellExecution: how one cell record changes the history graph. The rules are numbered; the
 * tests and docs/explanation/history-graph.md refer to them.
 */
import type { CellRecord, GroupCost } from '../store/checkpoint-store.js';
import { makeCellExecution, type CellExecution } from './cell-execution.js';
import { cellDependenciesOf } from './cell-record.js';
import type { HistoryGraph } from './history-graph.js';
import { makeVariableSnapshot, variableSnapshotId, type VariableSnapshot, type VariableSnapshotId } from './variable-snapshot.js';

/**
 * Adds the next cell of the session to the graph: a CellExecution, the snapshots it read and the
 * snapshots it wrote. The only way a history graph grows.
 *
 * @param graph the session's graph; `record` is the cell that ran after all the cells in it.
 * @param record the cell record (dependency fields missing: conservative defaults, see
 *   `cellDependenciesOf`).
 * @returns the new cell execution.
 *
 * #### Notes
 * Contradictory records (a name both deleted and created, a name in two groups) are read the way
 * that gives more dependencies, never rejected: a record is what the agent saw, and a lost cell
 * would hide every later dependency on it.
 */
export function applyCellExecution(graph: HistoryGraph, record: CellRecord): CellExecution {
  const cell = makeCellExecution(record, graph.cellExecutions.length);
  const dependencies = cellDependenciesOf(record);
  // Every active snapshot is only needed for cells that may read or modify anything.
  const everything = dependencies.readAll || !dependencies.effectsKnown ? graph.activeSnapshots() : [];

  // Rule 1. A created or rebound name is bound to a new object: its old value does not matter to
  // its new one. A name also reported modified is treated as modified (rule 7 then links the
  // versions), which can only add a dependency.
  const modified = new Set(dependencies.modified);
  const fresh = new Set([...record.created, ...record.rebound].filter((name) => !modified.has(name)));

  // Rule 2. The groups after the cell are the reported ones, overlapping groups merged (a name is
  // in one group only; merging links more, never less).
  const groups = mergeOverlappingGroups(dependencies.groups);
  const grouped = new Set(groups.flat());

  // Rule 3. A deleted name is one that is gone after the cell; a name the record also shows alive
  // (created, rebound, modified or grouped) exists after it, so it is not deleted.
  const deleted = new Set(record.deleted.filter((name) => !fresh.has(name) && !modified.has(name) && !grouped.has(name)));

  // Rule 4. A cell whose effects are unknown may have changed any variable in place: every
  // variable that existed before it and that it did not bind anew or delete counts as modified.
  if (!dependencies.effectsKnown) {
    for (const snapshot of everything) {
      for (const name of snapshot.names) if (!fresh.has(name) && !deleted.has(name)) modified.add(name);
    }
  }

  // Rule 5. A created or rebound name that no reported group lists is alone in its group. (A
  // modified name that no group lists stays with the rest of its old group: rule 8.)
  for (const name of fresh) {
    if (!grouped.has(name)) {
      groups.push([name]);
      grouped.add(name);
    }
  }

  const reads = new Map<VariableSnapshotId, VariableSnapshot>();
  const read = (snapshot: VariableSnapshot | undefined): void => {
    if (snapshot !== undefined) reads.set(snapshot.id, snapshot);
  };

  // Rule 6. The cell reads the active snapshot holding each name it read (a snapshot is a whole
  // group: reading one member reads the group). A cell that may read anything (`readAll`), or whose
  // effects are unknown, reads every active snapshot. Names without an active snapshot (never
  // recorded, or deleted) have nothing to read.
  for (const snapshot of everything) read(snapshot);
  for (const name of dependencies.read) read(graph.activeSnapshotOf(name));

  // Rule 7. Each group after the cell is a new snapshot written by the cell. A member that was not
  // bound anew (modified in place, or an existing object a new alias now shares) carries its old
  // value into the new version: the new version depends on the old, so the cell reads the old
  // snapshot. This is what makes `x.append(1)` depend on the cell that made `x`. A snapshot of a
  // group the record reported gets that group's cost facts; any other snapshot (merged groups,
  // rule 5 and rule 8 groups, deletions) has unknown costs.
  const reportedCosts = costsBySnapshot(dependencies.groups, record.groupCosts, cell.index);
  const writes: VariableSnapshot[] = [];
  for (const group of groups) {
    writes.push(makeVariableSnapshot(group, cell.index, false, reportedCosts.get(variableSnapshotId(group, cell.index))));
    for (const name of group) if (!fresh.has(name)) read(graph.activeSnapshotOf(name));
  }

  // Rule 8. An active snapshot that loses members (split: a member joined another group, was
  // rebound or deleted) or has a member modified in place is replaced as a whole: the members not
  // placed in a group by rules 2 and 5, and not deleted, stay together (unknown regrouping links
  // more, never less) in a new snapshot written by the cell, which reads the old one (their values
  // are carried over). So no active snapshot ever shares a name with a newer one.
  const touched = new Map<VariableSnapshotId, VariableSnapshot>();
  for (const name of [...grouped, ...deleted, ...modified]) {
    const snapshot = graph.activeSnapshotOf(name);
    if (snapshot !== undefined) touched.set(snapshot.id, snapshot);
  }
  for (const snapshot of touched.values()) {
    const remainder = snapshot.names.filter((name) => !grouped.has(name) && !deleted.has(name));
    if (remainder.length === 0) continue;
    writes.push(makeVariableSnapshot(remainder, cell.index, false));
    read(snapshot);
  }

  // Rule 9. Each deleted name gets a deleted snapshot of its own (deleted snapshots are always
  // singletons). A deletion reads nothing: `del x` does not need x's value.
  for (const name of deleted) writes.push(makeVariableSnapshot([name], cell.index, true));

  graph.appendCellExecution({ cell, reads: [...reads.keys()], writes });
  return cell;
}

/**
 * The cost facts the record reported, by the id the snapshot of each reported group gets. None
 * when the record has no costs, or costs not aligned with its groups (the protocol refuses those).
 */
function costsBySnapshot(
  groups: readonly (readonly string[])[],
  costs: readonly GroupCost[] | undefined,
  version: number,
): Map<VariableSnapshotId, GroupCost> {
  const bySnapshot = new Map<VariableSnapshotId, GroupCost>();
  if (costs === undefined || costs.length !== groups.length) return bySnapshot;
  groups.forEach((group, i) => {
    const cost = costs[i];
    if (cost !== undefined) bySnapshot.set(variableSnapshotId(group, version), cost);
  });
  return bySnapshot;
}

/**
 * Groups with shared names merged into one, each sorted (the agent sends disjoint groups; this only
 * guards the graph's "one name, one snapshot" invariant against a record that does not).
 */
function mergeOverlappingGroups(groups: readonly (readonly string[])[]): string[][] {
  const merged: Set<string>[] = [];
  for (const group of groups) {
    const into = new Set(group);
    for (let i = merged.length - 1; i >= 0; i -= 1) {
      const other = merged[i];
      if (other !== undefined && [...other].some((name) => into.has(name))) {
        for (const name of other) into.add(name);
        merged.splice(i, 1);
      }
    }
    if (into.size > 0) merged.push(into);
  }
  return merged.map((group) => [...group].sort());
}

/**
 * VariableSnapshot: one version of one co-variable group, a node of the history graph.
 *
 * Variables that share a reachable mutable object (`dlist = [l1]`: `dlist` and `l1`) form one
 * co-variable group (kishu's connected component), and a snapshot always covers a whole group: a
 * checkpoint can only store or recompute linked variables together, or `dlist[0] is l1` breaks.
 */

/** The id of a snapshot: `<names joined by ",">@<version>`, e.g. `dlist,l1@3`, `x@0`. */
export type VariableSnapshotId = string;

/** One version of one co-variable group. Immutable: a later change makes a new snapshot. */
export type VariableSnapshot = Readonly<{
  /** `<names joined by ",">@<version>` (see `variableSnapshotId`). */
  id: VariableSnapshotId;
  /** The group: sorted, never empty. A deleted snapshot always has exactly one name. */
  names: readonly string[];
  /**
   * The index of the cell execution that wrote it: the snapshot's timestamp (the paper's VS is a
   * (name, timestamp) pair). A name's versions increase with time but are not consecutive.
   */
  version: number;
  /** True for the snapshot a `del x` (or any disappearance of `x`) leaves: `x` no longer exists. */
  deleted: boolean;
}>;

/**
 * The id of the snapshot of `names` written by cell execution `version`.
 *
 * #### Notes
 * Unique within a graph because one cell writes each name at most once. Treat it as opaque; read
 * `names` and `version` from the snapshot itself.
 */
export function variableSnapshotId(names: readonly string[], version: number): VariableSnapshotId {
  return `${[...names].sort().join(',')}@${version}`;
}

/** A frozen snapshot of a group (names are sorted and de-duplicated). */
export function makeVariableSnapshot(names: Iterable<string>, version: number, deleted: boolean): VariableSnapshot {
  const sorted = Object.freeze([...new Set(names)].sort());
  return Object.freeze({ id: variableSnapshotId(sorted, version), names: sorted, version, deleted });
}

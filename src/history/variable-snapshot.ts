/**
 * VariableSnapshot: one version of one co-variable group, a node of the history graph.
 *
 * Variables that share a reachable mutable object (`dlist = [l1]`: `dlist` and `l1`) form one
 * co-variable group (kishu's connected component), and a snapshot always covers a whole group: a
 * checkpoint can only store or recompute linked variables together, or `dlist[0] is l1` breaks.
 */
import type { GroupCost } from '../store/checkpoint-store.js';

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
  /*
   * The group's cost facts as the agent reported them for this version (`GroupCost`: serialized
   * size, whether it is exact, whether every member can be serialized, which cannot and why).
   * All four present, or all four absent: absent means unknown (the record reported none, or the
   * group is not one the record reported, see apply-cell-execution.ts rule 7).
   */
  /** Serialized size in bytes; an estimate unless `bytesExact`. */
  bytes?: number;
  /** True when `bytes` is the exact serialized size. */
  bytesExact?: boolean;
  /** False when a member cannot be serialized (it is then listed in `unserializable`). */
  serializable?: boolean;
  /** The members that cannot be serialized, each with the reason. */
  unserializable?: readonly Readonly<{ name: string; reason: string }>[];
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

/**
 * A frozen snapshot of a group (names are sorted and de-duplicated).
 * @param cost the group's cost facts for this version, if known.
 */
export function makeVariableSnapshot(
  names: Iterable<string>,
  version: number,
  deleted: boolean,
  cost?: GroupCost,
): VariableSnapshot {
  const sorted = Object.freeze([...new Set(names)].sort());
  const snapshot = { id: variableSnapshotId(sorted, version), names: sorted, version, deleted };
  if (cost === undefined) return Object.freeze(snapshot);
  return Object.freeze({
    ...snapshot,
    bytes: cost.bytes,
    bytesExact: cost.bytesExact,
    serializable: cost.serializable,
    unserializable: Object.freeze(cost.unserializable.map(({ name, reason }) => Object.freeze({ name, reason }))),
  });
}

/** The cost facts of a snapshot, or undefined when they are unknown (see `VariableSnapshot`). */
export function costOfSnapshot(snapshot: VariableSnapshot): GroupCost | undefined {
  const { bytes, bytesExact, serializable, unserializable } = snapshot;
  if (bytes === undefined || bytesExact === undefined || serializable === undefined || unserializable === undefined) {
    return undefined;
  }
  return { bytes, bytesExact, serializable, unserializable: unserializable.map(({ name, reason }) => ({ name, reason })) };
}

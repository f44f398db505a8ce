/**
 * The restore plan an agent follows (agent protocol, "Restore"): which history cells to re-run,
 * after which cell to bind each stored group, and what rebuilds a group whose blob cannot be
 * loaded.
 *
 * It is worked out from what the checkpoint actually holds, not from the plan the checkpoint was
 * asked to follow: the agent may have had to rebuild more than planned (a variable that turned
 * out not to be serializable, and everything grouped with it).
 */
import type { Manifest, RestorePlan } from '../agent/agent-messages.js';
import type { HistoryGraph, VariableSnapshot } from '../history/index.js';

/**
 * @param graph the history graph of the checkpoint's own cells (the `cells` the restore receives).
 * @param manifest the checkpoint's manifest.
 */
export function restorePlanFor(graph: HistoryGraph, manifest: Manifest): RestorePlan {
  const snapshotsOf = (names: readonly string[]): VariableSnapshot[] => [
    ...new Set(names.map((name) => graph.activeSnapshotOf(name)).filter((s): s is VariableSnapshot => s !== undefined)),
  ];
  const rebuilt = snapshotsOf(manifest.recompute.map((item) => item.name));
  const loadAfter: Record<string, number> = {};
  const fallback: Record<string, number[]> = {};
  for (const group of manifest.groups) {
    const snapshots = snapshotsOf(group.names);
    // The last cell that changed any member: every re-run cell up to it ran before the group existed as stored.
    loadAfter[group.key] = snapshots.reduce((last, s) => Math.max(last, s.version), -1);
    if (snapshots.length > 0) fallback[group.key] = graph.cellsToRecompute(snapshots).map((cell) => cell.index);
  }
  return { rerun: graph.cellsToRecompute(rebuilt).map((cell) => cell.index), load_after: loadAfter, fallback };
}

/**
 * What a session's next kernel restores when the previous kernel died (killed, out of memory, its
 * node gone) with cells no checkpoint holds: the last checkpoint, if any, plus re-running the cells
 * recorded after it; with no checkpoint at all, re-running the recorded history (DESIGN invariant 6).
 *
 * The result is an ordinary complete checkpoint (trigger `recovery`): it lists the blobs of the
 * checkpoint it starts from (the session holds their bytes already, so nothing is copied) and the
 * whole history as its cells, and its restore plan re-runs the cells after that checkpoint last.
 * Handing it out, reporting on it and resuming it again later then work as for any checkpoint.
 */
import { manifestSchema, type Manifest, type RestorePlan } from '../agent/agent-messages.js';
import { HistoryGraph } from '../history/index.js';
import type { Logger } from '../log.js';
import { cellAnnotations } from '../planner/cell-annotations.js';
import { restorePlanFor } from '../planner/restore-plan.js';
import type { CellRecord, Checkpoint, CheckpointStore, KernelRun, KernelSession } from '../store/checkpoint-store.js';

/** The agent protocol version of the manifests this module writes. */
const PROTOCOL = 1;

export type Recovery = {
  checkpoint: Checkpoint;
  plan: RestorePlan;
  /** What the user is told, above the usual restore summary. */
  notice: string;
};

/**
 * @returns the recovery for `run`, already claimed by it; null when the previous kernel of the
 *   session ended normally, never ran a cell since its last checkpoint, or is of an agent that
 *   does not report its end.
 */
export async function recoverDiedRun(
  store: CheckpointStore,
  session: KernelSession,
  run: KernelRun,
  logger: Logger,
): Promise<Recovery | null> {
  const previous = await store.previousRun(session.id, run.id);
  if (previous === null || !previous.reportsEnd || previous.endedAt !== null) return null;
  const history = await store.historyOfRun(previous.id);
  const base = await store.latestCompleteCheckpoint(session.id);
  const covered = base !== null && isPrefix(base.cells, history) ? base.cells.length : 0;
  // A kernel that died before running anything (and was restored from nothing) had no state.
  if (history.length === 0) return null;
  if (base !== null && covered === history.length) {
    // Nothing ran after the last checkpoint: that checkpoint is the state to restore.
    await store.requestRestore(base.id);
    const claimed = await store.claimPendingRestore(session.id, run.id);
    if (claimed === null) return null;
    const plan = planFor(claimed);
    return plan === null ? null : { checkpoint: claimed, plan, notice: noticeText(previous, claimed, 0, 0, []) };
  }
  const baseManifest = covered > 0 && base !== null ? manifestSchema.safeParse(base.manifest) : null;
  const startFrom = baseManifest?.success === true ? { checkpoint: base as Checkpoint, manifest: baseManifest.data } : null;
  const later = history.slice(startFrom === null ? 0 : covered);
  const skipped = later
    .map((cell, i) => ({ cell, index: i + (startFrom === null ? 0 : covered) }))
    .filter(({ cell }) => cellAnnotations(cell.code).neverRerun);

  const created = await store.createCheckpoint({ sessionId: session.id, runId: previous.id, trigger: 'recovery' });
  const graph = HistoryGraph.fromCells(history);
  const manifest = recoveryManifest(created.id, graph, history, startFrom?.manifest ?? null, covered);
  const committed = await store.commitCheckpoint({
    checkpointId: created.id,
    manifest,
    cells: history,
    blobs: [],
    reused: manifest.groups.map((g) => ({ key: g.key, bytes: g.bytes, sha256: g.sha256 })),
    restoreOnNextStart: true,
  });
  const claimed = await store.claimPendingRestore(session.id, run.id);
  if (claimed === null || claimed.id !== committed.id) return null;
  const plan = recoveryPlan(graph, history, manifest, startFrom === null ? 0 : covered, new Set(skipped.map((s) => s.index)));
  logger.warn(
    { user: session.user, server: session.server, runId: run.id, diedRunId: previous.id, checkpointId: created.id, rerun: plan.rerun.length },
    'the previous kernel of this notebook died; recovering its state',
  );
  return {
    checkpoint: claimed,
    plan,
    notice: noticeText(previous, startFrom?.checkpoint ?? null, plan.rerun.length, history.length, skipped.map((s) => s.index)),
  };
}

/** The restore plan of a checkpoint as the handout makes it, or null for a manifest it cannot read. */
function planFor(checkpoint: Checkpoint): RestorePlan | null {
  const manifest = manifestSchema.safeParse(checkpoint.manifest);
  return manifest.success ? restorePlanFor(HistoryGraph.fromCells(checkpoint.cells), manifest.data) : null;
}

/** True when `prefix` is the start of `history` (same cells, by position, seq and code). */
function isPrefix(prefix: readonly CellRecord[], history: readonly CellRecord[]): boolean {
  if (prefix.length > history.length) return false;
  return prefix.every((cell, i) => cell.code === history[i]?.code && cell.seq === history[i]?.seq);
}

/**
 * The manifest of a recovery: the base checkpoint's groups and imports as they were, and every
 * variable alive at the end of the history that the base does not hold as "recompute".
 */
function recoveryManifest(
  checkpointId: string,
  graph: HistoryGraph,
  history: readonly CellRecord[],
  base: Manifest | null,
  covered: number,
): Manifest {
  const groups = (base?.groups ?? []).map(({ stored_in: _storedIn, ...group }) => group);
  const imports = base?.imports ?? [];
  const held = new Set([...groups.flatMap((g) => g.names), ...imports.map((i) => i.name)]);
  const recompute = [...(base?.recompute ?? [])];
  const listed = new Set([...held, ...recompute.map((r) => r.name)]);
  const laterReason = base === null ? 'no checkpoint holds it: re-running the recorded history' : 'made or changed after the last checkpoint';
  for (const name of graph.activeSnapshots().filter((s) => !s.deleted).flatMap((s) => s.names)) {
    if (listed.has(name)) continue;
    listed.add(name);
    recompute.push({ name, type: 'unknown', reason: laterReason });
  }
  const variables = [
    ...(base?.variables ?? []),
    ...recompute.filter((r) => !(base?.variables ?? []).some((v) => v.name === r.name)).map((r) => ({ name: r.name, type: r.type, how: 'recompute' as const })),
  ];
  const executionCount = Math.max(base?.execution_count ?? 0, ...history.slice(covered).map((c) => c.executionCount ?? 0));
  return {
    checkpoint_id: checkpointId,
    protocol: PROTOCOL,
    execution_count: executionCount,
    groups,
    imports,
    recompute,
    variables,
    timings: { serialize_s: 0, upload_s: 0 },
  };
}

/**
 * Re-run what the base checkpoint's own plan re-runs, bind its groups where it binds them, then
 * re-run every cell recorded after it, in order (but cells marked never-rerun). With no base,
 * re-run what rebuilds every variable alive at the end.
 */
function recoveryPlan(
  graph: HistoryGraph,
  history: readonly CellRecord[],
  manifest: Manifest,
  covered: number,
  skipped: ReadonlySet<number>,
): RestorePlan {
  if (covered === 0) {
    const rerun = graph.cellsToRecompute(graph.activeSnapshots()).map((c) => c.index).filter((i) => !skipped.has(i));
    return { rerun, load_after: {}, fallback: {} };
  }
  const baseGraph = HistoryGraph.fromCells(history.slice(0, covered));
  const basePlan = restorePlanFor(baseGraph, manifest);
  const later = history.map((_, i) => i).filter((i) => i >= covered && !skipped.has(i));
  return { ...basePlan, rerun: [...basePlan.rerun, ...later] };
}

function noticeText(died: KernelRun, base: Checkpoint | null, rerun: number, total: number, skipped: number[]): string {
  const when = died.startedAt.toISOString().replace('T', ' ').slice(0, 16);
  const from =
    base === null
      ? `No checkpoint held its state, so it was rebuilt by re-running ${rerun} of the ${total} cells it had run`
      : rerun === 0
        ? `Its state came back from checkpoint ${base.id}`
        : `Its state came back from checkpoint ${base.id} plus ${rerun} cells re-run (those run after it, and what it recomputes)`;
  const notRun = skipped.length === 0 ? '' : ` Cells marked never-rerun were not run again (history cells ${skipped.map((i) => i + 1).join(', ')}).`;
  return `jupyterhub-resume: the previous kernel of this notebook (started ${when} UTC) stopped without saving. ${from}.${notRun}`;
}

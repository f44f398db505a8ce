/**
 * The replication plan: for each co-variable group of a session, store it in the checkpoint or
 * rebuild it at restore by re-running cells, whichever is cheaper overall (ElasticNotebook §5,
 * digest §2; docs/explanation/replication-planner.md).
 *
 * The optimal plan is a minimum s-t cut. Every active snapshot (a group as it is now) and every
 * cell that could be re-run is a node:
 *
 * ```
 *  source ──store cost──► snapshot ──∞──► its producer cell ──rerun cost──► sink
 *                                              │
 *                                              └──∞──► producers of the inactive snapshots it read
 * ```
 *
 * Cutting `source → snapshot` stores the group. Leaving it uncut puts the snapshot on the source
 * side, and the infinite edges drag its producer and every cell that producer needs onto that side
 * too, so their `cell → sink` edges (their run times) are cut: the group is rebuilt. A cell several
 * groups need is paid once, which is why a greedy choice per group is not enough. The infinite
 * edges follow `HistoryGraph.cellsToRecompute` (req() of the paper) edge by edge, so req() sets
 * are never materialised: the network has one node per snapshot and cell, one edge per read.
 *
 * Constraints are more infinite edges: an unserializable group cannot be cut from the source
 * (store cost ∞), a never-rerun cell cannot be cut from the sink (rerun cost ∞), and an
 * always-store group gets `snapshot → sink` ∞. A cut of value ∞ is an impossible plan, reported
 * with the variable and the cell that block it.
 */
import { ResumeError } from '../errors.js';
import type { CellExecution, HistoryGraph, VariableSnapshot } from '../history/index.js';
import { cellAnnotations, type CellAnnotations } from './cell-annotations.js';
import { rerunCostS, storeCostS, transferSeconds, type CostModel } from './cost-model.js';
import { FlowNetwork } from './max-flow.js';

/** The plans a checkpoint can follow: the optimum, and the two baselines it is measured against. */
export const PLAN_STRATEGIES = ['optimal', 'store-all', 'recompute-all'] as const;
export type PlanStrategy = (typeof PLAN_STRATEGIES)[number];

/** What the plan does with one co-variable group, and why. */
export type GroupPlan = {
  snapshotId: string;
  names: string[];
  decision: 'store' | 'recompute';
  /** One sentence a user can read. */
  reason: string;
  /** Serialized size, when the agent reported it. */
  bytes: number | null;
  bytesExact: boolean;
  /** α · write + read seconds; null when the group cannot be stored. */
  storeCostS: number | null;
  /** Cells (history indices) that rebuilding this group alone re-runs; null when it cannot be rebuilt. */
  recomputeCells: number[] | null;
  /** Their run time; null when it cannot be rebuilt. */
  recomputeCostS: number | null;
};

export type ReplicationPlan = {
  strategy: PlanStrategy;
  costModel: CostModel;
  /** Every active group, in the graph's order (by version). */
  groups: GroupPlan[];
  /** Cells a restore re-runs (history indices), in execution order. */
  rerunCells: number[];
  predicted: {
    /** Writing the stored groups. */
    checkpointS: number;
    /** Reading them back. */
    loadS: number;
    /** Re-running `rerunCells`. */
    rerunS: number;
    /** `loadS + rerunS`. */
    restoreS: number;
  };
  /** What the plan minimises: α · checkpointS + restoreS. */
  costS: number;
};

export type PlanOptions = {
  /** Default `optimal`. */
  strategy?: PlanStrategy;
  /** Notebook cell tags by history index (`never-rerun`, `always-store`), when known. */
  tags?: ReadonlyMap<number, readonly string[]>;
};

/** Facts about one active snapshot that every strategy needs. */
type Candidate = {
  snapshot: VariableSnapshot;
  producer: CellExecution;
  /** α · write + read, or Infinity when it cannot be serialized. */
  storeCost: number;
  forcedStore: boolean;
};

/**
 * Plans what a checkpoint of `graph`'s session stores and what a restore re-runs.
 * @throws ResumeError RESUME_ERR_PLAN_IMPOSSIBLE (409) when some group can be neither stored nor
 *   rebuilt (the message names the variable and the cell).
 */
export function planReplication(graph: HistoryGraph, model: CostModel, options: PlanOptions = {}): ReplicationPlan {
  const strategy = options.strategy ?? 'optimal';
  const annotations = graph.cellExecutions.map((cell) => cellAnnotations(cell.code, options.tags?.get(cell.index)));
  const candidates = graph.activeSnapshots().map((snapshot): Candidate => {
    const producer = graph.producerOf(snapshot);
    return {
      snapshot,
      producer,
      storeCost: snapshot.serializable === false ? Infinity : storeCostS(snapshot.bytes ?? 0, model),
      forcedStore: annotations[producer.index]?.alwaysStore === true,
    };
  });
  let stored: Set<string>;
  if (strategy === 'optimal') stored = optimalStoreSet(graph, model, candidates, annotations);
  else if (strategy === 'store-all') stored = new Set(candidates.filter((c) => c.storeCost < Infinity).map((c) => c.snapshot.id));
  else stored = new Set();
  return describePlan(graph, model, strategy, candidates, annotations, stored);
}

/** The groups the minimum cut stores (see the module doc). */
function optimalStoreSet(
  graph: HistoryGraph,
  model: CostModel,
  candidates: readonly Candidate[],
  annotations: readonly CellAnnotations[],
): Set<string> {
  const network = new FlowNetwork();
  const source = network.addNode();
  const sink = network.addNode();
  const cellNodes = new Map<number, number>();
  const pending: CellExecution[] = [];
  const cellNode = (cell: CellExecution): number => {
    let node = cellNodes.get(cell.index);
    if (node === undefined) {
      node = network.addNode();
      cellNodes.set(cell.index, node);
      const neverRerun = annotations[cell.index]?.neverRerun === true;
      network.addEdge(node, sink, neverRerun ? Infinity : rerunCostS(cell, model));
      pending.push(cell);
    }
    return node;
  };
  const snapshotNodes = candidates.map((c) => {
    const node = network.addNode();
    network.addEdge(source, node, c.storeCost);
    network.addEdge(node, cellNode(c.producer), Infinity);
    if (c.forcedStore) network.addEdge(node, sink, Infinity);
    return node;
  });
  // Each cell needs the producers of the inactive snapshots it read (active ones are decided on their own).
  for (let cell = pending.pop(); cell !== undefined; cell = pending.pop()) {
    const from = cellNodes.get(cell.index) as number;
    for (const read of graph.readsOf(cell)) {
      if (!graph.isActive(read)) network.addEdge(from, cellNode(graph.producerOf(read)), Infinity);
    }
  }
  const cut = network.minCut(source, sink);
  if (cut.value === Infinity) throw impossiblePlan(graph, candidates, annotations);
  return new Set(candidates.filter((_, i) => !cut.sourceSide.has(snapshotNodes[i] as number)).map((c) => c.snapshot.id));
}

/** Costs and reasons of a decided store set; checks that what is rebuilt can be. */
function describePlan(
  graph: HistoryGraph,
  model: CostModel,
  strategy: PlanStrategy,
  candidates: readonly Candidate[],
  annotations: readonly CellAnnotations[],
  stored: ReadonlySet<string>,
): ReplicationPlan {
  // What rebuilding each group alone would re-run: for the explanation, and to refuse a plan
  // that rebuilds a group needing a never-rerun cell (only a baseline can: the cut never does).
  const alone = candidates.map((c) => graph.cellsToRecompute([c.snapshot]));
  const rebuildable = alone.map((cells) => !cells.some((cell) => annotations[cell.index]?.neverRerun));
  candidates.forEach((c, i) => {
    if (!stored.has(c.snapshot.id) && !rebuildable[i]) throw impossiblePlan(graph, [c], annotations, strategy);
  });
  const rerun = graph.cellsToRecompute(candidates.filter((c) => !stored.has(c.snapshot.id)).map((c) => c.snapshot));
  let checkpointS = 0;
  let loadS = 0;
  const groups = candidates.map((c, i): GroupPlan => {
    const { snapshot } = c;
    const cells = alone[i] as CellExecution[];
    const recomputeCostS = rebuildable[i] ? sum(cells.map((cell) => rerunCostS(cell, model))) : null;
    const decision = stored.has(snapshot.id) ? 'store' : 'recompute';
    if (decision === 'store') {
      const { writeS, readS } = transferSeconds(snapshot.bytes ?? 0, model);
      checkpointS += writeS;
      loadS += readS;
    }
    const storeCost = c.storeCost === Infinity ? null : c.storeCost;
    return {
      snapshotId: snapshot.id,
      names: [...snapshot.names],
      decision,
      reason: reasonFor(strategy, decision, c, cells, recomputeCostS, annotations),
      bytes: snapshot.bytes ?? null,
      bytesExact: snapshot.bytesExact === true,
      storeCostS: storeCost,
      recomputeCells: rebuildable[i] ? cells.map((cell) => cell.index) : null,
      recomputeCostS,
    };
  });
  const rerunS = sum(rerun.map((cell) => rerunCostS(cell, model)));
  return {
    strategy,
    costModel: model,
    groups,
    rerunCells: rerun.map((cell) => cell.index),
    predicted: { checkpointS, loadS, rerunS, restoreS: loadS + rerunS },
    costS: model.alpha * checkpointS + loadS + rerunS,
  };
}

function reasonFor(
  strategy: PlanStrategy,
  decision: 'store' | 'recompute',
  c: Candidate,
  alone: readonly CellExecution[],
  recomputeCostS: number | null,
  annotations: readonly CellAnnotations[],
): string {
  const unserializable = c.snapshot.unserializable?.[0];
  if (decision === 'recompute' && c.storeCost === Infinity) {
    return `it cannot be stored (${unserializable?.name ?? c.snapshot.names[0]}: ${unserializable?.reason ?? 'not serializable'})`;
  }
  if (decision === 'store' && c.forcedStore) return `cell ${cellLabel(c.producer)} is marked always-store`;
  const blocking = alone.find((cell) => annotations[cell.index]?.neverRerun);
  if (decision === 'store' && blocking !== undefined) {
    return `rebuilding it would re-run cell ${cellLabel(blocking)}, which is marked never-rerun`;
  }
  if (strategy === 'store-all') return 'the store-all plan stores every group that can be stored';
  if (strategy === 'recompute-all') return 'the recompute-all plan stores nothing';
  const size = c.snapshot.bytes === undefined ? ' (size unknown: counted as 0 bytes)' : '';
  const store = `storing it costs ${seconds(c.storeCost)}${size}`;
  const rebuild = `rebuilding it re-runs ${cellList(alone)} (${seconds(recomputeCostS ?? Infinity)})`;
  if (decision === 'store') return `${store}, less than ${rebuild}`;
  if ((recomputeCostS ?? Infinity) <= c.storeCost) return `${rebuild}, less than ${store}`;
  return `${rebuild}, but other rebuilt groups need those cells too, so on its own it costs less than ${store}`;
}

/**
 * The error for a group that can be neither stored nor rebuilt: the first unserializable group
 * that is marked always-store or whose rebuild needs a never-rerun cell.
 */
function impossiblePlan(
  graph: HistoryGraph,
  candidates: readonly Candidate[],
  annotations: readonly CellAnnotations[],
  strategy: PlanStrategy = 'optimal',
): ResumeError {
  for (const c of candidates) {
    const variable = c.snapshot.names.join(', ');
    const blocking = graph.cellsToRecompute([c.snapshot]).find((cell) => annotations[cell.index]?.neverRerun);
    const why = c.snapshot.unserializable?.[0]?.reason ?? 'it cannot be serialized';
    if (c.storeCost === Infinity && c.forcedStore) {
      return planError(
        `${variable} must be stored (cell ${cellLabel(c.producer)} is marked always-store), but ${why}.`,
        'Remove the always-store mark, or make the variable serializable.',
        variable,
        c.producer,
      );
    }
    if (blocking === undefined) continue;
    if (c.storeCost === Infinity) {
      return planError(
        `${variable} cannot be stored (${why}) and rebuilding it needs cell ${cellLabel(blocking)}, marked never-rerun.`,
        `Delete ${variable} before the checkpoint, or remove the never-rerun mark from that cell.`,
        variable,
        blocking,
      );
    }
    if (strategy !== 'optimal') {
      return planError(
        `The ${strategy} plan would rebuild ${variable}, which needs cell ${cellLabel(blocking)}, marked never-rerun.`,
        'Use the optimal plan, or remove the never-rerun mark from that cell.',
        variable,
        blocking,
      );
    }
  }
  return planError('No plan can both store and rebuild this session.', 'This is a bug in the planner; see the service log.', '', null);
}

function planError(message: string, hint: string, variable: string, cell: CellExecution | null): ResumeError {
  return new ResumeError('RESUME_ERR_PLAN_IMPOSSIBLE', message, {
    status: 409,
    hint,
    context: { variable, cell: cell?.index ?? null },
  });
}

/** How a user finds a cell: its execution count `[n]`, or its place in the history. */
function cellLabel(cell: CellExecution): string {
  return cell.executionCount === null ? `#${cell.index + 1} of the history` : `[${cell.executionCount}]`;
}

function cellList(cells: readonly CellExecution[]): string {
  const shown = cells.slice(0, 5).map(cellLabel).join(', ');
  return `${cells.length === 1 ? 'cell' : 'cells'} ${shown}${cells.length > 5 ? ` and ${cells.length - 5} more` : ''}`;
}

function seconds(s: number): string {
  if (s === Infinity) return 'forever';
  return s < 0.01 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

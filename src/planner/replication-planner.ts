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
import { unrepeatableCall, type Unrepeatable } from './unrepeatable-cells.js';

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
};

/** A group of an explained plan (`explainReplication`). */
export type ExplainedGroupPlan = GroupPlan & {
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
  /** The notebook tags the plan honoured, by history index (only cells that have tags). */
  cellTags: Record<number, readonly string[]>;
};

/** A plan whose groups say what rebuilding each alone would take (`explainReplication`). */
export type ExplainedPlan = Omit<ReplicationPlan, 'groups'> & { groups: ExplainedGroupPlan[] };

export type PlanOptions = {
  /** Default `optimal`. */
  strategy?: PlanStrategy;
  /** Notebook cell tags by history index (`never-rerun`, `always-store`), when known. */
  tags?: ReadonlyMap<number, readonly string[]>;
};

/** What the planner knows of one cell: the user's marks, and whether a re-run would repeat it faithfully. */
type CellFacts = CellAnnotations & {
  /** The call that a re-run would not repeat faithfully (`random.random`, `f.write`), or null. */
  unrepeatable: Unrepeatable | null;
};

/** Facts about one active snapshot that every strategy needs. */
type Candidate = {
  snapshot: VariableSnapshot;
  producer: CellExecution;
  /** α · write + read, or Infinity when it cannot be serialized. */
  storeCost: number;
  /** Marked always-store, or made by a cell a re-run would not repeat faithfully (and storable). */
  forcedStore: boolean;
};

/**
 * Plans what a checkpoint of `graph`'s session stores and what a restore re-runs.
 * @throws ResumeError RESUME_ERR_PLAN_IMPOSSIBLE (409) when some group can be neither stored nor
 *   rebuilt (the message names the variable and the cell).
 */
export function planReplication(graph: HistoryGraph, model: CostModel, options: PlanOptions = {}): ReplicationPlan {
  const strategy = options.strategy ?? 'optimal';
  const { annotations, candidates } = planningFacts(graph, model, options.tags);
  let stored: Set<string>;
  if (strategy === 'optimal') stored = optimalStoreSet(graph, model, candidates, annotations);
  else if (strategy === 'store-all') stored = new Set(candidates.filter((c) => c.storeCost < Infinity).map((c) => c.snapshot.id));
  else stored = new Set();
  return { ...describePlan(graph, model, strategy, candidates, annotations, stored), cellTags: Object.fromEntries(options.tags ?? []) };
}

/** The groups the minimum cut stores (see the module doc). */
function optimalStoreSet(
  graph: HistoryGraph,
  model: CostModel,
  candidates: readonly Candidate[],
  annotations: readonly CellFacts[],
): Set<string> {
  const network = new FlowNetwork();
  const source = network.addNode();
  const sink = network.addNode();
  const prerequisites = graph.prerequisiteCells();
  const cellNodes = new Map<number, number>();
  const pending: number[] = [];
  const cellNode = (index: number): number => {
    let node = cellNodes.get(index);
    if (node === undefined) {
      node = network.addNode();
      cellNodes.set(index, node);
      const facts = annotations[index];
      const cost = rerunCostS(graph.cellExecutions[index] as CellExecution, model);
      // A cell a re-run would not repeat faithfully is a last resort, like one of unknown duration:
      // what needs it is stored whenever it can be, and rebuilt from it only when it cannot.
      network.addEdge(node, sink, facts?.neverRerun ? Infinity : facts?.unrepeatable ? cost + model.unknownRuntimeS : cost);
      pending.push(index);
    }
    return node;
  };
  const snapshotNodes = candidates.map((c) => {
    const node = network.addNode();
    network.addEdge(source, node, c.storeCost);
    network.addEdge(node, cellNode(c.producer.index), Infinity);
    if (c.forcedStore) network.addEdge(node, sink, Infinity);
    return node;
  });
  // Each cell needs the producers of the inactive snapshots it read (active ones are decided on their own).
  for (let index = pending.pop(); index !== undefined; index = pending.pop()) {
    const from = cellNodes.get(index) as number;
    for (const needed of prerequisites[index] as readonly number[]) network.addEdge(from, cellNode(needed), Infinity);
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
  annotations: readonly CellFacts[],
  stored: ReadonlySet<string>,
): Omit<ReplicationPlan, 'cellTags'> {
  const closure = new CellClosure(graph);
  const rebuilt = candidates.filter((c) => !stored.has(c.snapshot.id));
  const rerun = closure.of(rebuilt.map((c) => c.producer.index)).map((index) => graph.cellExecutions[index] as CellExecution);
  if (rerun.some((cell) => annotations[cell.index]?.neverRerun)) {
    // Only a baseline gets here (the cut never re-runs such a cell): name the group that needs it.
    const blocked = rebuilt.filter((c) => closure.of([c.producer.index]).some((index) => annotations[index]?.neverRerun));
    throw impossiblePlan(graph, blocked, annotations, strategy);
  }
  let checkpointS = 0;
  let loadS = 0;
  const groups = candidates.map((c): GroupPlan => {
    const { snapshot } = c;
    const decision = stored.has(snapshot.id) ? 'store' : 'recompute';
    if (decision === 'store') {
      const { writeS, readS } = transferSeconds(snapshot.bytes ?? 0, model);
      checkpointS += writeS;
      loadS += readS;
    }
    return {
      snapshotId: snapshot.id,
      names: [...snapshot.names],
      decision,
      reason: reasonFor(strategy, decision, c, null, annotations),
      bytes: snapshot.bytes ?? null,
      bytesExact: snapshot.bytesExact === true,
      storeCostS: c.storeCost === Infinity ? null : c.storeCost,
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

/**
 * The plan with, for every group, the cells rebuilding it alone would re-run and their run time,
 * and a reason that quotes them. Separate from `planReplication` because it walks the history
 * once per group (quadratic on long dependency chains): a checkpoint needs only the decisions,
 * a person reading the plan needs this.
 * @param plan a plan of this same graph.
 */
export function explainReplication(graph: HistoryGraph, plan: ReplicationPlan, options: Pick<PlanOptions, 'tags'> = {}): ExplainedPlan {
  // A stored plan carries the tags it was made with (plans stored before tags were read have none).
  const tags = options.tags ?? new Map(Object.entries(plan.cellTags ?? {}).map(([index, cellTags]) => [Number(index), cellTags]));
  const { annotations, candidates } = planningFacts(graph, plan.costModel, tags);
  const byId = new Map(candidates.map((c) => [c.snapshot.id, c]));
  const closure = new CellClosure(graph);
  return {
    ...plan,
    groups: plan.groups.map((group) => {
      const c = byId.get(group.snapshotId);
      if (c === undefined) throw new RangeError(`the plan's group ${group.snapshotId} is not a group of this graph`);
      const cells = closure.of([c.producer.index]).map((index) => graph.cellExecutions[index] as CellExecution);
      const rebuildable = !cells.some((cell) => annotations[cell.index]?.neverRerun);
      const recomputeCostS = rebuildable ? sum(cells.map((cell) => rerunCostS(cell, plan.costModel))) : null;
      return {
        ...group,
        reason: reasonFor(plan.strategy, group.decision, c, { cells, recomputeCostS }, annotations),
        recomputeCells: rebuildable ? cells.map((cell) => cell.index) : null,
        recomputeCostS,
      };
    }),
  };
}

/** What every strategy needs: each cell's marks, each active group's store cost and producer. */
function planningFacts(
  graph: HistoryGraph,
  model: CostModel,
  tags: PlanOptions['tags'],
): { annotations: CellFacts[]; candidates: Candidate[] } {
  const annotations = graph.cellExecutions.map(
    (cell): CellFacts => ({ ...cellAnnotations(cell.code, tags?.get(cell.index)), unrepeatable: unrepeatableCall(cell.code) }),
  );
  const candidates = graph.activeSnapshots().map((snapshot): Candidate => {
    const producer = graph.producerOf(snapshot);
    const facts = annotations[producer.index];
    const storeCost = snapshot.serializable === false ? Infinity : storeCostS(snapshot.bytes ?? 0, model);
    return {
      snapshot,
      producer,
      storeCost,
      forcedStore: facts?.alwaysStore === true || (facts?.unrepeatable != null && storeCost < Infinity),
    };
  });
  return { annotations, candidates };
}

/**
 * `HistoryGraph.cellsToRecompute` over cell indices, for many queries in a row: one mark array
 * reused by every query instead of a set per query.
 */
class CellClosure {
  readonly #prerequisites: readonly (readonly number[])[];
  readonly #mark: Int32Array;
  #query = 0;

  constructor(graph: HistoryGraph) {
    this.#prerequisites = graph.prerequisiteCells();
    this.#mark = new Int32Array(this.#prerequisites.length);
  }

  /** The cells to re-run to rebuild what the cells `start` wrote, in execution order. */
  of(start: readonly number[]): number[] {
    const query = ++this.#query;
    const found: number[] = [];
    const pending = [...start];
    for (let index = pending.pop(); index !== undefined; index = pending.pop()) {
      if (this.#mark[index] === query) continue;
      this.#mark[index] = query;
      found.push(index);
      for (const needed of this.#prerequisites[index] as readonly number[]) if (this.#mark[needed] !== query) pending.push(needed);
    }
    return found.sort((a, b) => a - b);
  }
}

function reasonFor(
  strategy: PlanStrategy,
  decision: 'store' | 'recompute',
  c: Candidate,
  alone: { cells: readonly CellExecution[]; recomputeCostS: number | null } | null,
  annotations: readonly CellFacts[],
): string {
  const unserializable = c.snapshot.unserializable?.[0];
  if (decision === 'recompute' && c.storeCost === Infinity) {
    const unrepeatable = alone?.cells.find((cell) => annotations[cell.index]?.unrepeatable);
    const warning = unrepeatable === undefined ? '' : `; ${whyNotRepeatable(unrepeatable, annotations[unrepeatable.index]?.unrepeatable, 'may')}`;
    return `it cannot be stored (${unserializable?.name ?? c.snapshot.names[0]}: ${unserializable?.reason ?? 'not serializable'})${warning}`;
  }
  const producer = annotations[c.producer.index];
  if (decision === 'store' && producer?.alwaysStore) return `cell ${cellLabel(c.producer)} is marked always-store`;
  if (decision === 'store' && c.forcedStore) return whyNotRepeatable(c.producer, producer?.unrepeatable, 'would');
  const blocking = alone?.cells.find((cell) => annotations[cell.index]?.neverRerun);
  if (decision === 'store' && blocking !== undefined) {
    return `rebuilding it would re-run cell ${cellLabel(blocking)}, which is marked never-rerun`;
  }
  if (strategy === 'store-all') return 'the store-all plan stores every group that can be stored';
  if (strategy === 'recompute-all') return 'the recompute-all plan stores nothing';
  const size = c.snapshot.bytes === undefined ? ' (size unknown: counted as 0 bytes)' : '';
  const store = `storing it costs ${seconds(c.storeCost)}${size}`;
  if (alone === null) {
    return decision === 'store'
      ? `${store}, less than re-running the cells it needs`
      : `re-running the cells it needs costs less than storing it (${seconds(c.storeCost)}${size})`;
  }
  const rebuild = `rebuilding it re-runs ${cellList(alone.cells)} (${seconds(alone.recomputeCostS ?? Infinity)})`;
  if (decision === 'store') return `${store}, less than ${rebuild}`;
  if ((alone.recomputeCostS ?? Infinity) <= c.storeCost) return `${rebuild}, less than ${store}`;
  return `${rebuild}, but other rebuilt groups need those cells too, so on its own it costs less than ${store}`;
}

/**
 * The error for a group that can be neither stored nor rebuilt: the first unserializable group
 * that is marked always-store or whose rebuild needs a never-rerun cell.
 */
function impossiblePlan(
  graph: HistoryGraph,
  candidates: readonly Candidate[],
  annotations: readonly CellFacts[],
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

/** `re-running cell [3] (it calls random.random()) would give other values`, or `… would repeat what it did outside the kernel`. */
function whyNotRepeatable(cell: CellExecution, unrepeatable: Unrepeatable | null | undefined, certainty: 'may' | 'would'): string {
  const call = unrepeatable?.call ?? 'something';
  const shown = call.startsWith('!') || call.startsWith('%') ? `runs ${call}` : `calls ${call}()`;
  const outcome = unrepeatable?.kind === 'effects' ? 'repeat what it did outside the kernel' : 'give other values';
  return `re-running cell ${cellLabel(cell)} (it ${shown}) ${certainty} ${outcome}`;
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
  if (s < 0.0001) return 'under 0.1 ms';
  return s < 0.01 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

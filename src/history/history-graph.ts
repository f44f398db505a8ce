/**
 * HistoryGraph: the Application History Graph (AHG) of one kernel session, built from its cell
 * records (docs/explanation/history-graph.md).
 *
 * The graph is bipartite and acyclic. Its nodes are CellExecutions and VariableSnapshots; a `read`
 * edge VariableSnapshot → CellExecution says the cell may have accessed objects reachable from the
 * snapshot's variables, a `write` edge CellExecution → VariableSnapshot says the cell made that
 * version. Every snapshot has exactly one writer, its *producer*. False positives (extra edges) only
 * make plans slower; a missing edge makes them wrong, so every rule errs towards more edges.
 *
 * Pure: no I/O, no clock, no configuration. `applyCellExecution` (apply-cell-execution.ts) holds
 * the rules and is the only way a graph grows; the graph itself only checks its invariants.
 */
import { DirectedGraph } from 'graphology';
import type { CellRecord } from '../store/checkpoint-store.js';
import { applyCellExecution } from './apply-cell-execution.js';
import { cellExecutionId, type CellExecution, type CellExecutionId } from './cell-execution.js';
import {
  HISTORY_GRAPH_FORMAT_VERSION,
  historyGraphJsonSchema,
  invalidHistoryGraph,
  type HistoryEdgeJson,
  type HistoryGraphJson,
} from './history-graph-json.js';
import {
  costOfSnapshot,
  makeVariableSnapshot,
  variableSnapshotId,
  type VariableSnapshot,
  type VariableSnapshotId,
} from './variable-snapshot.js';

/** What one cell execution adds to the graph, its rules already applied (kishu's AHGUpdateResult). */
export type CellExecutionUpdate = {
  /** The new cell; its `index` must be the number of cells already in the graph. */
  cell: CellExecution;
  /** Snapshots the cell read: each must be active before the cell. */
  reads: readonly VariableSnapshotId[];
  /** Snapshots the cell wrote: new, `version` = the cell's index, no name in two of them. */
  writes: readonly VariableSnapshot[];
};

type HistoryNode = { kind: 'cell'; cell: CellExecution } | { kind: 'snapshot'; snapshot: VariableSnapshot };
type HistoryEdge = { kind: 'read' | 'write' };

/** Orders snapshots by version, then id: the order of every list this graph answers. */
function bySnapshotOrder(a: VariableSnapshot, b: VariableSnapshot): number {
  return a.version - b.version || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * The Application History Graph of one kernel session. `new HistoryGraph()` is the graph of a
 * session that has run no cell yet; `fromCells` and `fromJSON` build the others.
 */
export class HistoryGraph {
  readonly #graph = new DirectedGraph<HistoryNode, HistoryEdge>();
  readonly #cells: CellExecution[] = [];
  readonly #snapshots: VariableSnapshot[] = [];
  /** The latest snapshot of every name the graph has seen, deleted ones included. */
  readonly #latest = new Map<string, VariableSnapshot>();
  /** What each cell read, by cell index (plain arrays: the planner walks them thousands of times). */
  readonly #readsByCell: (readonly VariableSnapshot[])[] = [];
  /** `prerequisiteCells()`, until the next cell changes which snapshots are active. */
  #prerequisites: (readonly number[])[] | null = null;

  /**
   * Builds the graph of a session's history.
   * @param cells the session's cell records, in execution order (as `historyOfRun` returns them).
   */
  static fromCells(cells: Iterable<CellRecord>): HistoryGraph {
    const graph = new HistoryGraph();
    for (const cell of cells) applyCellExecution(graph, cell);
    return graph;
  }

  /**
   * Loads a graph from its JSON form (see history-graph-json.ts), checking every invariant.
   * @throws ResumeError RESUME_ERR_HISTORY_GRAPH_INVALID when the JSON is not a valid graph.
   */
  static fromJSON(json: unknown): HistoryGraph {
    const parsed = historyGraphJsonSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw invalidHistoryGraph(`${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`, parsed.error);
    }
    const { cellExecutions, variableSnapshots, edges } = parsed.data;

    // Each snapshot is written by the cell its version names: collect them per cell to replay.
    const versions = new Map<VariableSnapshotId, number>();
    const writesByCell = new Map<number, VariableSnapshot[]>();
    for (const s of variableSnapshots) {
      const snapshot = makeVariableSnapshot(s.names, s.version, s.deleted, costOfSnapshot(s));
      if (snapshot.id !== s.id) throw invalidHistoryGraph(`snapshot ${s.id} should have the id ${snapshot.id}`);
      if (snapshot.names.length !== s.names.length) throw invalidHistoryGraph(`snapshot ${s.id} repeats a name`);
      if (versions.has(s.id)) throw invalidHistoryGraph(`snapshot ${s.id} is listed twice`);
      versions.set(s.id, s.version);
      writesByCell.set(s.version, [...(writesByCell.get(s.version) ?? []), snapshot]);
    }
    const readsByCell = new Map<CellExecutionId, VariableSnapshotId[]>();
    const written = new Set<VariableSnapshotId>();
    for (const edge of edges) {
      const [cellId, snapshotId] = edge.kind === 'read' ? [edge.to, edge.from] : [edge.from, edge.to];
      const version = versions.get(snapshotId);
      if (version === undefined) throw invalidHistoryGraph(`edge ${edge.from} -> ${edge.to}: no snapshot ${snapshotId}`);
      if (edge.kind === 'read') {
        readsByCell.set(cellId, [...(readsByCell.get(cellId) ?? []), snapshotId]);
      } else if (cellId !== cellExecutionId(version) || written.has(snapshotId)) {
        throw invalidHistoryGraph(`edge ${edge.from} -> ${edge.to}: ${snapshotId} is written once, by ${cellExecutionId(version)}`);
      } else {
        written.add(snapshotId);
      }
    }
    if (written.size !== versions.size) throw invalidHistoryGraph('every snapshot needs its write edge');

    const graph = new HistoryGraph();
    for (const [index, c] of cellExecutions.entries()) {
      if (c.index !== index || c.id !== cellExecutionId(index)) {
        throw invalidHistoryGraph(`cell ${c.id} is at position ${index}: cells must be listed by index from 0`);
      }
      try {
        graph.appendCellExecution({
          cell: Object.freeze({ ...c }),
          reads: readsByCell.get(c.id) ?? [],
          writes: writesByCell.get(index) ?? [],
        });
      } catch (err) {
        throw invalidHistoryGraph(err instanceof Error ? err.message : String(err), err);
      }
      readsByCell.delete(c.id);
      writesByCell.delete(index);
    }
    const strayCell = [...readsByCell.keys(), ...[...writesByCell.keys()].map(cellExecutionId)][0];
    if (strayCell !== undefined) throw invalidHistoryGraph(`an edge or snapshot names ${strayCell}, which is not a cell`);
    return graph;
  }

  /** Every cell execution, by index (a read-only view, not a copy). */
  get cellExecutions(): readonly CellExecution[] {
    return this.#cells;
  }

  /** Every variable snapshot, by version, then id (a read-only view, not a copy). */
  get variableSnapshots(): readonly VariableSnapshot[] {
    return this.#snapshots;
  }

  /** The cell execution with this id. @throws RangeError when the graph has none. */
  cellExecution(id: CellExecutionId): CellExecution {
    const node = this.#graph.hasNode(id) ? this.#graph.getNodeAttributes(id) : undefined;
    if (node?.kind !== 'cell') throw new RangeError(`no cell execution ${id} in this history graph`);
    return node.cell;
  }

  /** The variable snapshot with this id. @throws RangeError when the graph has none. */
  variableSnapshot(id: VariableSnapshotId): VariableSnapshot {
    const node = this.#graph.hasNode(id) ? this.#graph.getNodeAttributes(id) : undefined;
    if (node?.kind !== 'snapshot') throw new RangeError(`no variable snapshot ${id} in this history graph`);
    return node.snapshot;
  }

  /**
   * The snapshots that hold the session's current variables: for each name, its latest snapshot,
   * unless that is a deletion. Only these are ever stored or rebuilt.
   * @returns by version, then id; each group once.
   */
  activeSnapshots(): VariableSnapshot[] {
    const active = new Map<string, VariableSnapshot>();
    for (const snapshot of this.#latest.values()) if (!snapshot.deleted) active.set(snapshot.id, snapshot);
    return [...active.values()].sort(bySnapshotOrder);
  }

  /** The active snapshot holding `name`, or undefined when the name does not exist now. */
  activeSnapshotOf(name: string): VariableSnapshot | undefined {
    const latest = this.#latest.get(name);
    return latest === undefined || latest.deleted ? undefined : latest;
  }

  /** True when `snapshot` holds current variables (see `activeSnapshots`). */
  isActive(snapshot: VariableSnapshot | VariableSnapshotId): boolean {
    const s = this.#snapshot(snapshot);
    // A snapshot is replaced as a whole (apply-cell-execution.ts, rule 8): one name tells for all.
    return !s.deleted && this.#latest.get(s.names[0] ?? '')?.id === s.id;
  }

  /** The cell execution that wrote `snapshot`. */
  producerOf(snapshot: VariableSnapshot | VariableSnapshotId): CellExecution {
    const id = this.#snapshot(snapshot).id;
    const writer = this.#graph.inNeighbors(id)[0];
    if (writer === undefined) throw new RangeError(`snapshot ${id} has no producer`);
    return this.cellExecution(writer);
  }

  /** The snapshots `cell` read, by version, then id. */
  readsOf(cell: CellExecution | CellExecutionId): VariableSnapshot[] {
    const id = this.#cell(cell).id;
    return this.#graph.inNeighbors(id).map((s) => this.variableSnapshot(s)).sort(bySnapshotOrder);
  }

  /** The snapshots `cell` wrote, by version, then id. */
  writesOf(cell: CellExecution | CellExecutionId): VariableSnapshot[] {
    const id = this.#cell(cell).id;
    return this.#graph.outNeighbors(id).map((s) => this.variableSnapshot(s)).sort(bySnapshotOrder);
  }

  /**
   * The cells to re-run to rebuild `snapshots`: ElasticNotebook's req() (paper §5.2, digest §2.2).
   *
   * From the producer of each snapshot, walk back: a cell needs the cells that produced what it
   * read, except for active snapshots. Those are ground: the plan either stores an active snapshot
   * or rebuilds it, and then asks for it here too, so its producers are never needed on behalf of
   * another snapshot. An inactive snapshot exists nowhere but in history, so its producer re-runs.
   *
   * @param snapshots usually active snapshots (the planner's "recompute" side).
   * @returns every needed cell once, in execution order (the order to re-run them).
   */
  cellsToRecompute(snapshots: Iterable<VariableSnapshot | VariableSnapshotId>): CellExecution[] {
    const prerequisites = this.prerequisiteCells();
    const needed = new Set<number>();
    // A snapshot's version is the index of the cell that wrote it.
    const pending = [...snapshots].map((s) => this.#snapshot(s).version);
    for (let index = pending.pop(); index !== undefined; index = pending.pop()) {
      if (needed.has(index)) continue;
      needed.add(index);
      pending.push(...(prerequisites[index] as readonly number[]));
    }
    return [...needed].sort((a, b) => a - b).map((index) => this.#cellAt(index));
  }

  /**
   * For each cell (by index), the cells that must re-run before it can be re-run: the producers of
   * the inactive snapshots it read, each once. The edges `cellsToRecompute` follows, as plain
   * arrays for callers that walk them many times (the planner). Depends on which snapshots are
   * active, so it is worked out again after a cell is appended.
   */
  prerequisiteCells(): readonly (readonly number[])[] {
    if (this.#prerequisites === null) {
      // Inline `isActive` (no lookups by id): this runs over every read of the session.
      const active = (s: VariableSnapshot) => !s.deleted && this.#latest.get(s.names[0] ?? '') === s;
      this.#prerequisites = this.#readsByCell.map((reads) => [
        ...new Set(reads.filter((read) => !active(read)).map((read) => read.version)),
      ]);
    }
    return this.#prerequisites;
  }

  /** The graph as plain data (history-graph-json.ts); `HistoryGraph.fromJSON` reads it back. */
  toJSON(): HistoryGraphJson {
    const edges: HistoryEdgeJson[] = [];
    for (const cell of this.#cells) {
      for (const s of this.readsOf(cell)) edges.push({ kind: 'read', from: s.id, to: cell.id });
      for (const s of this.writesOf(cell)) edges.push({ kind: 'write', from: cell.id, to: s.id });
    }
    return {
      formatVersion: HISTORY_GRAPH_FORMAT_VERSION,
      cellExecutions: this.#cells.map((c) => ({ ...c })),
      variableSnapshots: this.variableSnapshots.map((s) => ({
        id: s.id,
        names: [...s.names],
        version: s.version,
        deleted: s.deleted,
        ...costOfSnapshot(s),
      })),
      edges,
    };
  }

  /**
   * Adds one cell execution whose reads and writes are already decided. Knows no rules: it only
   * refuses an update that would break the graph's invariants (cells in order, reads of active
   * snapshots only, new snapshots written once, each name in at most one of them).
   *
   * @internal Use `applyCellExecution`, which decides the update from a cell record; only it and
   * `fromJSON` call this.
   * @throws RangeError on an update that breaks an invariant (the graph is left unchanged).
   */
  appendCellExecution(update: CellExecutionUpdate): void {
    const { cell, reads, writes } = update;
    const index = this.#cells.length;
    if (cell.index !== index || cell.id !== cellExecutionId(index)) {
      throw new RangeError(`cell ${cell.id} cannot follow ${index} cells: cells are appended in order`);
    }
    for (const id of reads) {
      if (!this.#graph.hasNode(id) || !this.isActive(id)) throw new RangeError(`cell ${cell.id} reads ${id}, which is not active`);
    }
    const written = new Set<string>();
    for (const s of writes) {
      if (s.version !== index || s.id !== variableSnapshotId(s.names, s.version) || this.#graph.hasNode(s.id)) {
        throw new RangeError(`cell ${cell.id} cannot write snapshot ${s.id}`);
      }
      if (s.deleted && s.names.length !== 1) throw new RangeError(`deleted snapshot ${s.id} must have one name`);
      for (const name of s.names) {
        if (written.has(name)) throw new RangeError(`cell ${cell.id} writes ${name} twice`);
        written.add(name);
      }
    }

    this.#graph.addNode(cell.id, { kind: 'cell', cell });
    for (const id of reads) this.#graph.mergeEdge(id, cell.id, { kind: 'read' });
    for (const s of writes) {
      this.#graph.addNode(s.id, { kind: 'snapshot', snapshot: s });
      this.#graph.addEdge(cell.id, s.id, { kind: 'write' });
      for (const name of s.names) this.#latest.set(name, s);
    }
    this.#cells.push(cell);
    this.#readsByCell.push(reads.map((id) => this.variableSnapshot(id)));
    this.#prerequisites = null;
    // Writes all have this cell's version, the highest yet: sorting them keeps the list in order.
    this.#snapshots.push(...[...writes].sort(bySnapshotOrder));
  }

  #snapshot(snapshot: VariableSnapshot | VariableSnapshotId): VariableSnapshot {
    return this.variableSnapshot(typeof snapshot === 'string' ? snapshot : snapshot.id);
  }

  #cell(cell: CellExecution | CellExecutionId): CellExecution {
    return this.cellExecution(typeof cell === 'string' ? cell : cell.id);
  }

  #cellAt(index: number): CellExecution {
    const cell = this.#cells[index];
    if (cell === undefined) throw new RangeError(`no cell execution at index ${index}`);
    return cell;
  }
}

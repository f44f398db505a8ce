/**
 * Minimum s-t cut by maximum flow (push-relabel, FIFO, with global relabelling), for the
 * replication planner.
 *
 * Capacities are seconds and may be `Infinity` (a constraint: an edge that must never be cut).
 * A path made only of infinite edges means no finite cut exists; `minCut` then reports `Infinity`
 * without computing a flow. Otherwise every infinite capacity is replaced by one more than the
 * sum of all finite ones: no cut that crosses such an edge can then be minimal, so the cut found
 * is the true one.
 *
 * Why push-relabel and not Dinic: the planner's networks hold chains of thousands of cells (each
 * `df = df.dropna()` adds a link), and a cell at depth d of a chain is only reached by augmenting
 * paths of length d. Dinic then needs one phase per depth, each a full pass over the network,
 * which took 9 s for a 20,000-cell session; push-relabel moves flow down a chain locally and took
 * a fraction of that (bench/results/planner.json).
 */

/**
 * Residual capacity below this (relative to the network's total capacity) counts as none: float
 * sums of seconds leave crumbs like 1e-17, which would otherwise keep nodes active for nothing.
 */
const RELATIVE_EPSILON = 1e-12;

/** A directed flow network over nodes `0 … size - 1`, built edge by edge. */
export class FlowNetwork {
  /** For each node, the indices (into the edge arrays) of the edges leaving it. */
  readonly #out: number[][] = [];
  /** Edge arrays; edge `e ^ 1` is the residual twin of edge `e`. */
  readonly #to: number[] = [];
  readonly #capacity: number[] = [];

  /** Adds a node and returns its index. */
  addNode(): number {
    this.#out.push([]);
    return this.#out.length - 1;
  }

  get size(): number {
    return this.#out.length;
  }

  /**
   * Adds an edge `from → to` with `capacity` (≥ 0, `Infinity` allowed).
   * @throws RangeError for an unknown node or a negative or NaN capacity.
   */
  addEdge(from: number, to: number, capacity: number): void {
    if (!(capacity >= 0)) throw new RangeError(`capacity must be ≥ 0, not ${capacity}`);
    const fromOut = this.#out[from];
    const toOut = this.#out[to];
    if (fromOut === undefined || toOut === undefined) throw new RangeError(`no node ${fromOut === undefined ? from : to}`);
    fromOut.push(this.#to.length);
    this.#to.push(to);
    this.#capacity.push(capacity);
    toOut.push(this.#to.length);
    this.#to.push(from);
    this.#capacity.push(0);
  }

  /**
   * The minimum cut between `source` and `sink`. Consumes the network (capacities become residual).
   * @returns the cut's value, and the nodes on the source side (those from which the sink cannot
   *   be reached in the residual network); with `value` `Infinity`, the source side is every node
   *   an infinite path from the source reaches.
   */
  minCut(source: number, sink: number): { value: number; sourceSide: Set<number> } {
    if (source === sink) throw new RangeError('source and sink must differ');
    const unbounded = this.#reachableByInfiniteEdges(source);
    if (unbounded.has(sink)) return { value: Infinity, sourceSide: unbounded };
    const finiteTotal = this.#capacity.reduce((sum, c) => (c === Infinity ? sum : sum + c), 0);
    const big = finiteTotal + 1;
    for (let e = 0; e < this.#capacity.length; e++) if (this.#capacity[e] === Infinity) this.#capacity[e] = big;
    const epsilon = Math.max(1e-9, big * RELATIVE_EPSILON);
    const value = this.#pushRelabel(source, sink, epsilon);
    const reachesSink = this.#reachingSink(sink, epsilon);
    const sourceSide = new Set<number>();
    for (let node = 0; node < this.size; node++) if (!reachesSink.has(node)) sourceSide.add(node);
    return { value, sourceSide };
  }

  /** A maximum preflow (FIFO push-relabel); returns the flow into the sink. */
  #pushRelabel(source: number, sink: number, epsilon: number): number {
    const n = this.size;
    const height = new Int32Array(n);
    const excess = new Float64Array(n);
    const next = new Int32Array(n);
    const queued = new Uint8Array(n);
    const queue: number[] = [];
    let head = 0;
    const activate = (node: number) => {
      if (node !== source && node !== sink && queued[node] === 0 && (excess[node] as number) > epsilon) {
        queued[node] = 1;
        queue.push(node);
      }
    };
    this.#globalRelabel(source, sink, height, epsilon);
    for (const e of this.#out[source] as number[]) {
      const capacity = this.#capacity[e] as number;
      if (capacity <= 0) continue;
      const to = this.#to[e] as number;
      this.#send(e, capacity);
      excess[to] = (excess[to] as number) + capacity;
      activate(to);
    }
    // Relabelling from the sink again every n relabels keeps heights exact distances (the heuristic that makes FIFO fast).
    let relabels = 0;
    while (head < queue.length) {
      const node = queue[head++] as number;
      queued[node] = 0;
      const edges = this.#out[node] as number[];
      while ((excess[node] as number) > epsilon && (height[node] as number) < 2 * n) {
        if ((next[node] as number) === edges.length) {
          // Relabel: one above the lowest neighbour still reachable through a residual edge.
          let lowest = 2 * n;
          for (const e of edges) if ((this.#capacity[e] as number) > epsilon) lowest = Math.min(lowest, height[this.#to[e] as number] as number);
          height[node] = lowest + 1;
          next[node] = 0;
          if (++relabels % n === 0) this.#globalRelabel(source, sink, height, epsilon);
          continue;
        }
        const e = edges[next[node] as number] as number;
        const to = this.#to[e] as number;
        const capacity = this.#capacity[e] as number;
        if (capacity > epsilon && height[node] === (height[to] as number) + 1) {
          const flow = Math.min(excess[node] as number, capacity);
          this.#send(e, flow);
          excess[node] = (excess[node] as number) - flow;
          excess[to] = (excess[to] as number) + flow;
          activate(to);
        } else {
          next[node] = (next[node] as number) + 1;
        }
      }
      if (head > 4096 && head * 2 > queue.length) {
        queue.splice(0, head); // keep the queue from growing without bound
        head = 0;
      }
    }
    return excess[sink] as number;
  }

  /**
   * Sets every node's height to its residual distance to the sink (nodes that cannot reach it,
   * to at least n: their excess can only go back to the source).
   */
  #globalRelabel(source: number, sink: number, height: Int32Array, epsilon: number): void {
    const n = this.size;
    height.fill(2 * n);
    height[sink] = 0;
    const queue = [sink];
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head] as number;
      for (const e of this.#out[node] as number[]) {
        // The twin of `e` runs from `to` back to `node`: `to` reaches the sink through it.
        const from = this.#to[e] as number;
        if (height[from] === 2 * n && (this.#capacity[e ^ 1] as number) > epsilon && from !== source) {
          height[from] = (height[node] as number) + 1;
          queue.push(from);
        }
      }
    }
    height[source] = n;
  }

  /** Nodes from which the sink can be reached in the residual network. */
  #reachingSink(sink: number, epsilon: number): Set<number> {
    const seen = new Set([sink]);
    const stack = [sink];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      for (const e of this.#out[node] as number[]) {
        const from = this.#to[e] as number;
        if (!seen.has(from) && (this.#capacity[e ^ 1] as number) > epsilon) {
          seen.add(from);
          stack.push(from);
        }
      }
    }
    return seen;
  }

  /** Moves `flow` along edge `e`: less residual capacity forward, more backward. */
  #send(e: number, flow: number): void {
    this.#capacity[e] = (this.#capacity[e] as number) - flow;
    this.#capacity[e ^ 1] = (this.#capacity[e ^ 1] as number) + flow;
  }

  /** Nodes reachable from `from` over infinite edges only. */
  #reachableByInfiniteEdges(from: number): Set<number> {
    const seen = new Set([from]);
    const stack = [from];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      for (const e of this.#out[node] as number[]) {
        const capacity = this.#capacity[e] as number;
        const to = this.#to[e] as number;
        if (capacity === Infinity && !seen.has(to)) {
          seen.add(to);
          stack.push(to);
        }
      }
    }
    return seen;
  }
}

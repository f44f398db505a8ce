/**
 * Minimum s-t cut by maximum flow (Dinic's algorithm), for the replication planner.
 *
 * Capacities are seconds and may be `Infinity` (a constraint: an edge that must never be cut).
 * Dinic's algorithm runs in O(V²E) in general and is far faster on the planner's graphs, which
 * are shallow: source → variable snapshot → cells → sink. A path made only of infinite edges
 * means no finite cut exists; `minCut` then reports `Infinity` without pushing flow through it.
 */

/**
 * Residual capacity below this counts as none: float sums of seconds leave crumbs like 1e-17,
 * which would otherwise cost extra phases and put nodes on the wrong side of a tie.
 */
const EPSILON = 1e-9;

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
   * @returns the cut's value, and the nodes on the source side (reachable from `source` in the
   *   residual network); with `value` `Infinity`, the source side is every node an infinite path reaches.
   */
  minCut(source: number, sink: number): { value: number; sourceSide: Set<number> } {
    if (source === sink) throw new RangeError('source and sink must differ');
    if (this.#infinitePathExists(source, sink)) return { value: Infinity, sourceSide: this.#reachable(source, true) };
    let value = 0;
    const level = new Int32Array(this.size);
    const next = new Int32Array(this.size);
    while (this.#levels(source, sink, level)) {
      next.fill(0);
      for (let pushed = this.#push(source, sink, level, next); pushed > 0; pushed = this.#push(source, sink, level, next)) {
        value += pushed;
      }
    }
    return { value, sourceSide: this.#reachable(source, false) };
  }

  /** Breadth-first levels over edges with residual capacity; false when the sink is unreachable. */
  #levels(source: number, sink: number, level: Int32Array): boolean {
    level.fill(-1);
    level[source] = 0;
    const queue = [source];
    for (let head = 0; head < queue.length; head++) {
      const node = queue[head] as number;
      for (const e of this.#out[node] as number[]) {
        const to = this.#to[e] as number;
        if ((this.#capacity[e] as number) > EPSILON && level[to] === -1) {
          level[to] = (level[node] as number) + 1;
          queue.push(to);
        }
      }
    }
    return level[sink] !== -1;
  }

  /**
   * One augmenting path along increasing levels (depth first, iterative so that 20,000-cell
   * chains cannot overflow the stack); `next` remembers each node's next edge to try.
   */
  #push(source: number, sink: number, level: Int32Array, next: Int32Array): number {
    const pathEdges: number[] = [];
    let node = source;
    for (;;) {
      if (node === sink) {
        let bottleneck = Infinity;
        for (const e of pathEdges) bottleneck = Math.min(bottleneck, this.#capacity[e] as number);
        for (const e of pathEdges) {
          this.#capacity[e] = (this.#capacity[e] as number) - bottleneck;
          this.#capacity[e ^ 1] = (this.#capacity[e ^ 1] as number) + bottleneck;
        }
        return bottleneck;
      }
      const edges = this.#out[node] as number[];
      let advanced = false;
      while ((next[node] as number) < edges.length) {
        const e = edges[next[node] as number] as number;
        const to = this.#to[e] as number;
        if ((this.#capacity[e] as number) > EPSILON && level[to] === (level[node] as number) + 1) {
          pathEdges.push(e);
          node = to;
          advanced = true;
          break;
        }
        next[node] = (next[node] as number) + 1;
      }
      if (advanced) continue;
      // Dead end: never try this node again in this phase, and step back.
      level[node] = -1;
      const back = pathEdges.pop();
      if (back === undefined) return 0;
      node = this.#to[back ^ 1] as number;
      next[node] = (next[node] as number) + 1;
    }
  }

  #infinitePathExists(source: number, sink: number): boolean {
    return this.#reachable(source, true).has(sink);
  }

  /** Nodes reachable from `from` over edges with residual capacity (only infinite ones if asked). */
  #reachable(from: number, infiniteOnly: boolean): Set<number> {
    const seen = new Set([from]);
    const stack = [from];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      for (const e of this.#out[node] as number[]) {
        const capacity = this.#capacity[e] as number;
        const to = this.#to[e] as number;
        if ((infiniteOnly ? capacity === Infinity : capacity > EPSILON) && !seen.has(to)) {
          seen.add(to);
          stack.push(to);
        }
      }
    }
    return seen;
  }
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlowNetwork } from '../../../src/planner/max-flow.js';

type Edge = [from: number, to: number, capacity: number];

function network(size: number, edges: readonly Edge[]): FlowNetwork {
  const n = new FlowNetwork();
  for (let i = 0; i < size; i++) n.addNode();
  for (const [from, to, capacity] of edges) n.addEdge(from, to, capacity);
  return n;
}

/** The cheapest cut by trying every set of nodes that holds the source (0) and not the sink (1). */
function bruteForceCut(size: number, edges: readonly Edge[]): number {
  let best = Infinity;
  for (let mask = 0; mask < 1 << (size - 2); mask++) {
    const sourceSide = (node: number) => node === 0 || (node > 1 && (mask & (1 << (node - 2))) !== 0);
    let value = 0;
    for (const [from, to, capacity] of edges) if (sourceSide(from) && !sourceSide(to)) value += capacity;
    best = Math.min(best, value);
  }
  return best;
}

/** A small random generator with a seed, so that a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

describe('FlowNetwork.minCut', () => {
  it('finds the textbook cut and the nodes on the source side', () => {
    // 0 = source, 1 = sink: 0→2 (3), 0→3 (2), 2→3 (1), 2→1 (2), 3→1 (3): max flow 5.
    const cut = network(4, [
      [0, 2, 3],
      [0, 3, 2],
      [2, 3, 1],
      [2, 1, 2],
      [3, 1, 3],
    ]).minCut(0, 1);
    assert.equal(cut.value, 5);
    // Two cuts are worth 5 ({0} and {0, 2, 3}); the source side is every node that cannot reach the sink.
    assert.deepEqual([...cut.sourceSide].sort(), [0, 2, 3]);
  });

  it('never cuts an infinite edge, and says so when every cut would', () => {
    const finite = network(4, [
      [0, 2, 5],
      [2, 3, Infinity],
      [3, 1, 1],
    ]).minCut(0, 1);
    assert.equal(finite.value, 1);
    assert.deepEqual([...finite.sourceSide].sort(), [0, 2, 3]);

    const infinite = network(3, [
      [0, 2, Infinity],
      [2, 1, Infinity],
    ]).minCut(0, 1);
    assert.equal(infinite.value, Infinity);
    assert.ok(infinite.sourceSide.has(2));
  });

  it('equals the brute-force minimum on 300 random networks', () => {
    const next = random(7);
    for (let trial = 0; trial < 300; trial++) {
      const size = 3 + Math.floor(next() * 6);
      const edges: Edge[] = [];
      for (let k = 0; k < size * 2; k++) {
        const from = Math.floor(next() * size);
        const to = Math.floor(next() * size);
        if (from === to || to === 0 || from === 1) continue;
        const capacity = next() < 0.15 ? Infinity : Math.round(next() * 100) / 10;
        edges.push([from, to, capacity]);
      }
      const expected = bruteForceCut(size, edges);
      const cut = network(size, edges).minCut(0, 1);
      assert.ok(Math.abs(cut.value - expected) < 1e-9 || cut.value === expected, `trial ${trial}: ${cut.value} vs ${expected}`);
      if (expected < Infinity) {
        // The reported side is a cut of exactly that value.
        let value = 0;
        for (const [from, to, capacity] of edges) if (cut.sourceSide.has(from) && !cut.sourceSide.has(to)) value += capacity;
        assert.ok(Math.abs(value - expected) < 1e-9, `trial ${trial}: side worth ${value}, not ${expected}`);
      }
    }
  });

  it('refuses negative capacities and unknown nodes', () => {
    const n = network(2, []);
    assert.throws(() => n.addEdge(0, 1, -1), RangeError);
    assert.throws(() => n.addEdge(0, 5, 1), RangeError);
    assert.throws(() => n.minCut(0, 0), RangeError);
  });
});

/**
 * The rules of applyCellExecution, one scenario each (notation: agent-cells.ts). Scenarios marked
 * §7.2 are ElasticNotebook's deleted input/output tests (docs: /work/shared/reference/elasticnotebook.md),
 * with our answers where they differ.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyCellExecution } from '../../../src/history/apply-cell-execution.js';
import { HistoryGraph } from '../../../src/history/history-graph.js';
import { makeVariableSnapshot } from '../../../src/history/variable-snapshot.js';
import { activeIds, describeGraph, oldAgentCell, recompute, session } from './agent-cells.js';

describe('applyCellExecution', () => {
  describe('reads and writes (§7.2)', () => {
    it('links `y = x` to the x it read, and keeps an int alone in its group', () => {
      //   [0] --> x@0* --> [1] --> y@1*
      const graph = HistoryGraph.fromCells(
        session(['x = 5', { created: ['x'], groups: [['x']] }], ['y = x', { read: ['x'], created: ['y'], groups: [['y']] }]),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> y@1']);
      assert.deepEqual(activeIds(graph), ['x@0', 'y@1']);
    });

    it('puts `y = x` of a list into one group with x: one new snapshot for both', () => {
      // y is x: storing one and recomputing the other would break `y is x`, so they are one
      // snapshot. x carries its old value into it (rule 7): the new version reads x@0.
      //   [0] --> x@0 --> [1] --> x,y@1*
      const graph = HistoryGraph.fromCells(
        session(['x = [1, 2]', { created: ['x'], groups: [['x']] }], ['y = x', { read: ['x'], created: ['y'], groups: [['x', 'y']] }]),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> x,y@1']);
      assert.deepEqual(activeIds(graph), ['x,y@1']);
    });

    it('writes one snapshot per created name when atoms link nothing (`y = len(x)`, `y = x; z = x + 1`)', () => {
      //   [0] --> x@0* --> [1] --> y@1
      //               \--> [2] --> y@2* z@2*
      const graph = HistoryGraph.fromCells(
        session(
          ['x = [1, 2]', { created: ['x'], groups: [['x']] }],
          ['y = len(x)', { read: ['x'], created: ['y'], groups: [['y']] }],
          ['y = x[0]; z = x[0] + 1', { read: ['x'], rebound: ['y'], created: ['z'], groups: [['y'], ['z']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> y@1', '2: x@0 -> y@2 z@2']);
      assert.deepEqual(activeIds(graph), ['x@0', 'y@2', 'z@2']);
    });

    it('invents no read the record does not have (`y = 1; z = y` reads nothing)', () => {
      //   [0] --> y@0* z@0*
      const graph = HistoryGraph.fromCells(session(['y = 1; z = y', { created: ['y', 'z'], groups: [['y'], ['z']] }]));
      assert.deepEqual(describeGraph(graph), ['0: - -> y@0 z@0']);
    });

    it('makes `x += 1` read the x it rebinds', () => {
      //   [0] --> x@0 --> [1] --> x@1*
      const graph = HistoryGraph.fromCells(
        session(['x = 1', { created: ['x'], groups: [['x']] }], ['x += 1', { read: ['x'], rebound: ['x'], groups: [['x']] }]),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> x@1']);
      assert.deepEqual(activeIds(graph), ['x@1']);
    });

    it('makes an in-place change depend on the old version (`x.reverse(); s.strip()`)', () => {
      // x changed in place: its new version reads its old one. `s.strip()` makes a new string and
      // changes nothing: s@0 stays active.
      //   [0] --> x@0 ---> [1] --> x@1*
      //      \--> s@0* --/
      const graph = HistoryGraph.fromCells(
        session(
          ["x = [1, 2]; s = 'ab'", { created: ['s', 'x'], groups: [['s'], ['x']] }],
          ['x.reverse(); s.strip()', { read: ['s', 'x'], modified: ['x'], groups: [['x']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> s@0 x@0', '1: s@0 x@0 -> x@1']);
      assert.deepEqual(activeIds(graph), ['s@0', 'x@1']);
    });

    it('writes nothing for `print(x); print(s)`: reading is not modifying', () => {
      // ElasticNotebook counted passing a mutable x as a possible modification; the agent compares
      // content, so print(x) leaves x@0 active.
      //   [0] --> s@0* x@0* --> [1]
      const graph = HistoryGraph.fromCells(
        session(
          ["x = [1, 2]; s = 'ab'", { created: ['s', 'x'], groups: [['s'], ['x']] }],
          ['print(x); print(s)', { read: ['s', 'x'] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> s@0 x@0', '1: s@0 x@0 -> -']);
      assert.deepEqual(activeIds(graph), ['s@0', 'x@0']);
    });

    it('records what a failing cell made before it failed', () => {
      //   [0] --> x@0* --> [1] (error) --> y@1*          (z was never created)
      const graph = HistoryGraph.fromCells(
        session(
          ['x = 1', { created: ['x'], groups: [['x']] }],
          [
            'y = x; print(undefined); z = x',
            {
              status: 'error',
              error: { ename: 'NameError', evalue: "name 'undefined' is not defined" },
              read: ['undefined', 'x'],
              created: ['y'],
              groups: [['y']],
            },
          ],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> y@1']);
      assert.equal(graph.cellExecution('cell:1').status, 'error');
    });
  });

  describe('deletion', () => {
    it('writes a deleted snapshot for `del x`, and `x = 1` afterwards starts afresh', () => {
      //   [0] --> x@0       [1] --> x@1 (del)       [2] --> x@2*
      const graph = HistoryGraph.fromCells(
        session(['x = [1]', { created: ['x'], groups: [['x']] }], ['del x', { deleted: ['x'] }], ['x = 1', { created: ['x'], groups: [['x']] }]),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: - -> x@1 (del)', '2: - -> x@2']);
      assert.deepEqual(activeIds(graph), ['x@2']);
      assert.deepEqual(recompute(graph, ['x@2']), [2]);
    });

    it('takes `del x; x = 1` in one cell as a rebinding, not a deletion (§7.2)', () => {
      // The agent compares namespaces before and after: x was there and is there, another object.
      //   [0] --> x@0       [1] --> x@1*
      const graph = HistoryGraph.fromCells(
        session(['x = [1]', { created: ['x'], groups: [['x']] }], ['del x; x = 1', { rebound: ['x'], groups: [['x']] }]),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: - -> x@1']);
      assert.equal(graph.variableSnapshot('x@1').deleted, false);
    });

    it('leaves the rest of a group in a new snapshot that reads the old one when a member is deleted', () => {
      //   [0] --> a@0 --> [1] --> a,b@1 --> [2] --> a@2 (del)
      //                                         \-> b@2*
      const graph = HistoryGraph.fromCells(
        session(
          ['a = [1]', { created: ['a'], groups: [['a']] }],
          ['b = a', { read: ['a'], created: ['b'], groups: [['a', 'b']] }],
          ['del a', { deleted: ['a'] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> a@0', '1: a@0 -> a,b@1', '2: a,b@1 -> a@2 (del) b@2']);
      assert.deepEqual(activeIds(graph), ['b@2']);
      assert.deepEqual(recompute(graph, ['b@2']), [0, 1, 2]);
    });
  });

  describe('co-variable groups', () => {
    it('splits an alias group when `b = [9]` rebinds one member', () => {
      // b is rebound: its new snapshot needs nothing old. a lost its partner: a new snapshot of
      // a alone, whose value comes from a,b@1, so cell 2 reads a,b@1 (rule 8).
      //   [0] --> a@0 --> [1] --> a,b@1 --> [2] --> a@2*
      //                                         \-> b@2*
      const graph = HistoryGraph.fromCells(
        session(
          ['a = [1, 2]', { created: ['a'], groups: [['a']] }],
          ['b = a', { read: ['a'], created: ['b'], groups: [['a', 'b']] }],
          ['b = [9]', { rebound: ['b'], groups: [['b']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> a@0', '1: a@0 -> a,b@1', '2: a,b@1 -> a@2 b@2']);
      assert.deepEqual(activeIds(graph), ['a@2', 'b@2']);
      assert.deepEqual(recompute(graph, ['a@2']), [0, 1, 2]);
      // A false positive of the bipartite model: b@2 needs only cell 2, but cell 2 read a,b@1 on
      // behalf of a. Correct, just slower; the planner's costs decide whether it matters.
      assert.deepEqual(recompute(graph, ['b@2']), [0, 1, 2]);
    });

    it('writes one snapshot for `l1.append(4)` when `dlist = [l1]` shares l1', () => {
      //   [0] --> l1@0 --> [1] --> dlist,l1@1 --> [2] --> dlist,l1@2*
      const graph = HistoryGraph.fromCells(
        session(
          ['l1 = [1, 2, 3]', { created: ['l1'], groups: [['l1']] }],
          ['dlist = [l1]', { read: ['l1'], created: ['dlist'], groups: [['dlist', 'l1']] }],
          ['l1.append(4)', { read: ['l1'], modified: ['dlist', 'l1'], groups: [['dlist', 'l1']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> l1@0', '1: l1@0 -> dlist,l1@1', '2: dlist,l1@1 -> dlist,l1@2']);
      assert.deepEqual(activeIds(graph), ['dlist,l1@2']);
    });

    it('merges two groups when `a.append(b)` links them', () => {
      // b was not read by name in a way that changes it, but its object now lives inside a: the
      // merged snapshot carries b@1's value, so cell 2 reads b@1 too.
      //   [0] --> a@0 ---> [2] --> a,b@2*
      //   [1] --> b@1 --/
      const graph = HistoryGraph.fromCells(
        session(
          ['a = []', { created: ['a'], groups: [['a']] }],
          ['b = [1]', { created: ['b'], groups: [['b']] }],
          ['a.append(b)', { read: ['a', 'b'], modified: ['a'], groups: [['a', 'b']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> a@0', '1: - -> b@1', '2: a@0 b@1 -> a,b@2']);
    });

    it('keeps the members a split leaves behind together when the record does not regroup them', () => {
      // a and c still share the list x was bound to; the record lists only x's new group.
      //   [0] --> x@0 --> [1] --> a,c,x@1 --> [2] --> a,c@2*
      //                                          \-> x@2*
      const graph = HistoryGraph.fromCells(
        session(
          ['x = [1]', { created: ['x'], groups: [['x']] }],
          ['a = [x]; c = [x]', { read: ['x'], created: ['a', 'c'], groups: [['a', 'c', 'x']] }],
          ['x = 0', { rebound: ['x'], groups: [['x']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> a,c,x@1', '2: a,c,x@1 -> a,c@2 x@2']);
    });

    it('keeps a modified name that no group lists with its old group', () => {
      //   [0] --> l1@0 --> [1] --> dlist,l1@1 --> [2] --> dlist,l1@2*
      const graph = HistoryGraph.fromCells(
        session(
          ['l1 = [1]', { created: ['l1'], groups: [['l1']] }],
          ['dlist = [l1]', { read: ['l1'], created: ['dlist'], groups: [['dlist', 'l1']] }],
          ['l1.append(4)', { read: ['l1'], modified: ['l1'] }],
        ),
      );
      assert.deepEqual(describeGraph(graph).at(-1), '2: dlist,l1@1 -> dlist,l1@2');
    });
  });

  describe('modified on read', () => {
    it('makes a generator that was advanced depend on its previous version', () => {
      // The agent cannot compare a generator's content, so reading it counts as modifying it.
      //   [0] --> gen@0 --> [1] --> gen@1*
      const graph = HistoryGraph.fromCells(
        session(
          ['gen = (i for i in range(3))', { created: ['gen'], groups: [['gen']] }],
          ['next(gen)', { read: ['gen'], modified: ['gen'], groups: [['gen']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> gen@0', '1: gen@0 -> gen@1']);
      assert.deepEqual(recompute(graph, ['gen@1']), [0, 1]);
    });
  });

  describe('cells with unknown effects', () => {
    it('makes a cell rebuilt from history read everything active and possibly modify it', () => {
      // Cells 0 and 1 ran before the agent loaded (effects_known: false). Cell 1 may have changed
      // a in place, so a's current value needs cells 0 and 1. Cell 2 is recorded normally.
      //   [0] --> a@0 --> [1] --> a@1*
      //                       \-> b@1* --> [2] --> c@2*
      const rebuilt = { effects_known: false, timing_known: false, read_all: true } as const;
      const graph = HistoryGraph.fromCells(
        session(
          ['a = [1]', { ...rebuilt, created: ['a'] }],
          ['b = 2', { ...rebuilt, created: ['b'] }],
          ['c = b', { read: ['b'], created: ['c'], groups: [['c']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> a@0', '1: a@0 -> a@1 b@1', '2: b@1 -> c@2']);
      assert.equal(graph.cellExecution('cell:1').effectsKnown, false);
      assert.equal(graph.cellExecution('cell:1').timingKnown, false);
      assert.deepEqual(recompute(graph, ['a@1']), [0, 1]);
      assert.deepEqual(recompute(graph, ['c@2']), [2]);
    });

    it('reads everything for a cell with read_all, but modifies nothing it does not report', () => {
      //   [0] --> a@0* b@0* --> [1] --> c@1*
      const graph = HistoryGraph.fromCells(
        session(
          ['a = [1]; b = [2]', { created: ['a', 'b'], groups: [['a'], ['b']] }],
          ['c = eval("a")', { read_all: true, created: ['c'], groups: [['c']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> a@0 b@0', '1: a@0 b@0 -> c@1']);
      assert.deepEqual(activeIds(graph), ['a@0', 'b@0', 'c@1']);
    });

    it('treats records from an agent without dependency fields as reading and modifying everything', () => {
      // Old agents never reported in-place changes: x.append(2) below is invisible in the record.
      // Conservative defaults (read_all, effects unknown) still make x@1 depend on cell 1.
      //   [0] --> x@0 --> [1] --> x@1* --> [2] --> x@2*
      //                                        \-> y@2*
      const graph = HistoryGraph.fromCells([
        oldAgentCell(1, 'x = [1]', { created: ['x'] }),
        oldAgentCell(2, 'x.append(2)'),
        oldAgentCell(3, 'y = 1', { created: ['y'] }),
      ]);
      assert.deepEqual(describeGraph(graph), ['0: - -> x@0', '1: x@0 -> x@1', '2: x@1 -> x@2 y@2']);
      assert.equal(graph.cellExecution('cell:1').timingKnown, true);
      assert.deepEqual(recompute(graph, ['x@2']), [0, 1, 2]);
    });
  });

  describe('contradictory records', () => {
    it('reads a name both deleted and created as alive, and merges overlapping groups', () => {
      //   [0] --> a@0 b@0 c@0 --> [1] --> a,b,c@1*
      const graph = HistoryGraph.fromCells(
        session(
          ['a = [1]; b = [2]; c = [3]', { created: ['a', 'b', 'c'], groups: [['a'], ['b'], ['c']] }],
          ['…', { deleted: ['c'], created: ['c'], modified: ['a', 'b'], groups: [['a', 'b'], ['b', 'c']] }],
        ),
      );
      assert.deepEqual(describeGraph(graph), ['0: - -> a@0 b@0 c@0', '1: a@0 b@0 -> a,b,c@1']);
    });
  });

  describe('cost facts', () => {
    const exactArray = { bytes: 8_000_153, bytes_exact: true, serializable: true, unserializable: [] };
    const generatorGroup = {
      bytes: 96,
      bytes_exact: false,
      serializable: false,
      unserializable: [{ name: 'gen', reason: "TypeError: cannot pickle 'generator' object" }],
    };
    /** The cost attributes of a snapshot, `undefined` each when unknown. */
    const costOf = (graph: HistoryGraph, id: string) => {
      const { bytes, bytesExact, serializable, unserializable } = graph.variableSnapshot(id);
      return { bytes, bytesExact, serializable, unserializable };
    };
    const unknown = { bytes: undefined, bytesExact: undefined, serializable: undefined, unserializable: undefined };

    it('gives the snapshot of each reported group that group’s facts, index by index', () => {
      //   [0] --> a@0* gen,nums@0*
      const graph = HistoryGraph.fromCells(
        session([
          'a = np.zeros(1_000_000); nums = [1]; gen = (n for n in nums)',
          { created: ['a', 'nums', 'gen'], groups: [['a'], ['gen', 'nums']], group_costs: [exactArray, generatorGroup] },
        ]),
      );
      assert.deepEqual(costOf(graph, 'a@0'), { bytes: 8_000_153, bytesExact: true, serializable: true, unserializable: [] });
      assert.deepEqual(costOf(graph, 'gen,nums@0'), {
        bytes: 96,
        bytesExact: false,
        serializable: false,
        unserializable: [{ name: 'gen', reason: "TypeError: cannot pickle 'generator' object" }],
      });
    });

    it('leaves costs unknown for a record without them and for groups the record did not report', () => {
      //   [0] --> x@0 --> [1] --> a,c,x@1 --> [2] --> a,c@2*   (rule 8: no costs reported for a,c)
      //                                          \-> x@2*    (reported)
      //   [3] --> y@3* (an agent without cost facts)
      const graph = HistoryGraph.fromCells(
        session(
          ['x = [1]', { created: ['x'], groups: [['x']], group_costs: [exactArray] }],
          ['a = [x]; c = [x]', { read: ['x'], created: ['a', 'c'], groups: [['a', 'c', 'x']], group_costs: [generatorGroup] }],
          ['x = 0', { rebound: ['x'], groups: [['x']], group_costs: [exactArray] }],
          ['y = 1', { created: ['y'], groups: [['y']] }],
        ),
      );
      assert.equal(costOf(graph, 'a,c,x@1').bytes, 96);
      assert.equal(costOf(graph, 'x@2').bytes, 8_000_153);
      assert.deepEqual(costOf(graph, 'a,c@2'), unknown);
      assert.deepEqual(costOf(graph, 'y@3'), unknown);
      assert.deepEqual(graph.toJSON().variableSnapshots.find((s) => s.id === 'y@3'), { id: 'y@3', names: ['y'], version: 3, deleted: false });
    });

    it('leaves costs unknown for groups merged because the record overlapped them', () => {
      const graph = HistoryGraph.fromCells(
        session([
          'a = [1]; b = a; c = [a]',
          { created: ['a', 'b', 'c'], groups: [['a', 'b'], ['a', 'c']], group_costs: [exactArray, exactArray] },
        ]),
      );
      assert.deepEqual(costOf(graph, 'a,b,c@0'), unknown);
    });
  });

  it('numbers cells by their place in the history, not by seq (seq restarts in every kernel run)', () => {
    const [first, second] = session(['x = 1', { created: ['x'] }], ['y = 2', { created: ['y'] }]);
    assert.ok(first !== undefined && second !== undefined);
    const graph = new HistoryGraph();
    applyCellExecution(graph, first);
    const next = applyCellExecution(graph, { ...second, seq: 1 });
    assert.deepEqual([next.id, next.index, next.seq], ['cell:1', 1, 1]);
  });
});

describe('HistoryGraph.appendCellExecution', () => {
  it('refuses an update that breaks an invariant and leaves the graph unchanged', () => {
    const graph = HistoryGraph.fromCells(session(['x = 1', { created: ['x'], groups: [['x']] }]));
    const before = graph.toJSON();
    const cell = Object.freeze({ ...graph.cellExecution('cell:0'), id: 'cell:1', index: 1 });
    assert.throws(() => graph.appendCellExecution({ cell, reads: ['y@0'], writes: [] }), RangeError);
    assert.throws(
      () => graph.appendCellExecution({ cell, reads: [], writes: [makeVariableSnapshot(['x'], 1, false), makeVariableSnapshot(['x', 'y'], 1, false)] }),
      RangeError,
    );
    assert.throws(() => graph.appendCellExecution({ cell, reads: [], writes: [makeVariableSnapshot(['x'], 0, false)] }), RangeError);
    assert.deepEqual(graph.toJSON(), before);
  });
});

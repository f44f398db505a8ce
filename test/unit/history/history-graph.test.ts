/**
 * HistoryGraph queries, on ElasticNotebook's observed session (digest §1.7, every row as one
 * session; notation: agent-cells.ts) and on the req() cases of digest §2.2, §2.4 and §7.2.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HistoryGraph } from '../../../src/history/history-graph.js';
import { activeIds, describeGraph, recompute, session } from './agent-cells.js';
import { elasticNotebookSession } from './elastic-notebook-session.js';

describe('HistoryGraph', () => {
  describe("ElasticNotebook's observed session (§1.7)", () => {
    const graph = HistoryGraph.fromCells(elasticNotebookSession);

    it('builds the expected graph', () => {
      assert.deepEqual(describeGraph(graph), [
        '0: - -> x@0 y@0',
        '1: x@0 y@0 -> z@1',
        '2: x@0 z@1 -> l1@2 x@2',
        '3: l1@2 -> dlist,l1@3 gen@3',
        '4: gen@3 -> gen@4',
        '5: dlist,l1@3 -> dlist,l1@5',
        '6: dlist,l1@5 -> dlist@6 l1@6',
        '7: - -> SimpleNamespace@7 obj@7',
        '8: obj@7 -> obj@8',
        '9: y@0 -> f@9 y@9',
        '10: z@1 -> g@10 w@10',
        '11: z@1 g@10 -> w2@11',
        '12: - -> w2@12 (del)',
        '13: obj@8 -> alias,obj@13',
        '14: - -> k@14',
      ]);
    });

    it('knows the active snapshots: the latest of each name, deletions left out', () => {
      assert.deepEqual(activeIds(graph), [
        'z@1',
        'x@2',
        'gen@4',
        'dlist@6',
        'l1@6',
        'SimpleNamespace@7',
        'f@9',
        'y@9',
        'g@10',
        'w@10',
        'alias,obj@13',
        'k@14',
      ]);
      assert.equal(graph.activeSnapshotOf('w2'), undefined);
      assert.equal(graph.activeSnapshotOf('obj')?.id, 'alias,obj@13');
      assert.equal(graph.isActive('obj@8'), false);
      assert.equal(graph.isActive('w2@12'), false);
    });

    it('answers producers, reads and writes', () => {
      assert.equal(graph.producerOf('l1@6').code, 'dlist[0] = [9]');
      assert.equal(graph.producerOf(graph.variableSnapshot('w2@12')).id, 'cell:12');
      assert.deepEqual(
        graph.readsOf('cell:11').map((s) => s.id),
        ['z@1', 'g@10'],
      );
      assert.deepEqual(
        graph.writesOf(graph.cellExecution('cell:3')).map((s) => s.names),
        [['dlist', 'l1'], ['gen']],
      );
      const cell = graph.cellExecution('cell:2');
      assert.deepEqual(cell, {
        id: 'cell:2',
        index: 2,
        seq: 3,
        executionCount: 3,
        code: 'x += 1; l1 = [z, 2, 3]',
        durationS: 0.001,
        status: 'ok',
        timingKnown: true,
        effectsKnown: true,
      });
    });

    it("needs {0, 2, 3, 5, 6} to recompute dlist, as in ElasticNotebook's req(CE6) (§2.2)", () => {
      // z@1 is active, so cell 1 is not needed: z is stored or recomputed on its own account.
      assert.deepEqual(recompute(graph, ['dlist@6']), [0, 2, 3, 5, 6]);
      assert.deepEqual(recompute(graph, ['l1@6']), [0, 2, 3, 5, 6]);
    });

    it('needs only the producer for a snapshot whose reads are all active', () => {
      assert.deepEqual(recompute(graph, ['w@10']), [10]);
      assert.deepEqual(recompute(graph, ['alias,obj@13']), [7, 8, 13]);
    });

    it('re-runs every cell but `w2 = g(4)` and `del w2` to recompute everything (§2.4)', () => {
      const all = graph.activeSnapshots();
      assert.deepEqual(recompute(graph, all.map((s) => s.id)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14]);
    });

    it('refuses ids it does not have', () => {
      assert.throws(() => graph.cellsToRecompute(['nope@1']), RangeError);
      assert.throws(() => graph.readsOf('cell:99'), RangeError);
    });
  });

  describe('cellsToRecompute (req(), §7.2)', () => {
    it('needs nothing for nothing, also on an empty graph', () => {
      assert.deepEqual(recompute(new HistoryGraph(), []), []);
    });

    it('needs the one cell of a single-cell session', () => {
      //   [0] --> x@0*
      const graph = HistoryGraph.fromCells(session(['x = 1', { created: ['x'], groups: [['x']] }]));
      assert.deepEqual(recompute(graph, ['x@0']), [0]);
    });

    describe('on a chain', () => {
      //   [0] --> x@0* --> [1] --> y@1*
      //                       \--> z@1*
      const graph = HistoryGraph.fromCells(
        session(
          ['x = [1]', { created: ['x'], groups: [['x']] }],
          ['y = x[0]; z = len(x)', { read: ['x'], created: ['y', 'z'], groups: [['y'], ['z']] }],
        ),
      );

      it('needs only cell 1 to recompute y and z when x is migrated', () => {
        assert.deepEqual(recompute(graph, ['y@1', 'z@1']), [1]);
      });

      it('needs cells 0 and 1 when nothing is migrated', () => {
        assert.deepEqual(recompute(graph, ['x@0', 'y@1', 'z@1']), [0, 1]);
      });
    });

    it('goes back through a deleted input (the optimizer test problem, §2.4)', () => {
      // c1 makes z, c2 and c3 read it, then z is deleted: x and y need c1 again.
      //   [0] --> z@0 --> [1] --> x@1*
      //              \--> [2] --> y@2*       [3] --> z@3 (del)
      const graph = HistoryGraph.fromCells(
        session(
          ['z = make_z()', { created: ['z'], groups: [['z']], duration_s: 3 }],
          ['x = f(z)', { read: ['z'], created: ['x'], groups: [['x']], duration_s: 0.1 }],
          ['y = g(z)', { read: ['z'], created: ['y'], groups: [['y']], duration_s: 0.1 }],
          ['del z', { deleted: ['z'] }],
        ),
      );
      assert.deepEqual(activeIds(graph), ['x@1', 'y@2']);
      assert.deepEqual(recompute(graph, ['x@1']), [0, 1]);
      assert.deepEqual(recompute(graph, ['x@1', 'y@2']), [0, 1, 2]);
      assert.equal(graph.cellExecution('cell:0').durationS, 3);
    });
  });
});


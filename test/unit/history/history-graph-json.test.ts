/**
 * HistoryGraph.toJSON / fromJSON: the plain-data form the API answers and the store keeps.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { applyCellExecution } from '../../../src/history/apply-cell-execution.js';
import { HistoryGraph } from '../../../src/history/history-graph.js';
import type { HistoryGraphJson } from '../../../src/history/history-graph-json.js';
import { describeGraph, session } from './agent-cells.js';
import { elasticNotebookSession } from './elastic-notebook-session.js';

/** Asserts that loading `json` fails with RESUME_ERR_HISTORY_GRAPH_INVALID and a message matching `message`. */
function assertInvalid(json: unknown, message: RegExp): void {
  assert.throws(
    () => HistoryGraph.fromJSON(json),
    (err) => isResumeError(err) && err.code === 'RESUME_ERR_HISTORY_GRAPH_INVALID' && message.test(err.message),
  );
}

describe('HistoryGraph JSON', () => {
  //   [0] --> x@0 --> [1] --> x@1*
  const small = HistoryGraph.fromCells(
    session(
      ['x = [1]', { created: ['x'], groups: [['x']] }],
      ['x.append(2)', { read: ['x'], modified: ['x'], groups: [['x']], duration_s: 0.25 }],
    ),
  );

  it('has the documented shape', () => {
    assert.deepEqual(small.toJSON(), {
      formatVersion: 1,
      cellExecutions: [
        {
          id: 'cell:0',
          index: 0,
          seq: 1,
          executionCount: 1,
          code: 'x = [1]',
          durationS: 0.001,
          status: 'ok',
          timingKnown: true,
          effectsKnown: true,
        },
        {
          id: 'cell:1',
          index: 1,
          seq: 2,
          executionCount: 2,
          code: 'x.append(2)',
          durationS: 0.25,
          status: 'ok',
          timingKnown: true,
          effectsKnown: true,
        },
      ],
      variableSnapshots: [
        { id: 'x@0', names: ['x'], version: 0, deleted: false },
        { id: 'x@1', names: ['x'], version: 1, deleted: false },
      ],
      edges: [
        { kind: 'write', from: 'cell:0', to: 'x@0' },
        { kind: 'read', from: 'x@0', to: 'cell:1' },
        { kind: 'write', from: 'cell:1', to: 'x@1' },
      ],
    } satisfies HistoryGraphJson);
  });

  it('round-trips through JSON text to an equal graph', () => {
    const graph = HistoryGraph.fromCells(elasticNotebookSession);
    const loaded = HistoryGraph.fromJSON(JSON.parse(JSON.stringify(graph)));
    assert.deepEqual(loaded.toJSON(), graph.toJSON());
    assert.deepEqual(describeGraph(loaded), describeGraph(graph));
    assert.deepEqual(loaded.activeSnapshots(), graph.activeSnapshots());
    assert.deepEqual(loaded.cellsToRecompute(['dlist@6']), graph.cellsToRecompute(['dlist@6']));
  });

  it('keeps growing after a load as if it had never been stored', () => {
    const resumed = HistoryGraph.fromJSON(HistoryGraph.fromCells(elasticNotebookSession.slice(0, 7)).toJSON());
    for (const cell of elasticNotebookSession.slice(7)) applyCellExecution(resumed, cell);
    assert.deepEqual(resumed.toJSON(), HistoryGraph.fromCells(elasticNotebookSession).toJSON());
  });

  describe('cost facts of snapshots', () => {
    //   [0] --> x@0 --> [1] --> x@1*   (cell 1 from an agent without cost facts)
    const withCosts = HistoryGraph.fromCells(
      session(
        [
          'x = [1]',
          {
            created: ['x'],
            groups: [['x']],
            group_costs: [{ bytes: 17, bytes_exact: true, serializable: true, unserializable: [] }],
          },
        ],
        ['x.append(2)', { read: ['x'], modified: ['x'], groups: [['x']] }],
      ),
    );

    it('writes them as snapshot attributes, and nothing for unknown ones', () => {
      assert.deepEqual(withCosts.toJSON().variableSnapshots, [
        { id: 'x@0', names: ['x'], version: 0, deleted: false, bytes: 17, bytesExact: true, serializable: true, unserializable: [] },
        { id: 'x@1', names: ['x'], version: 1, deleted: false },
      ]);
    });

    it('round-trips them through JSON text', () => {
      const loaded = HistoryGraph.fromJSON(JSON.parse(JSON.stringify(withCosts)));
      assert.deepEqual(loaded.toJSON(), withCosts.toJSON());
      assert.deepEqual(loaded.variableSnapshot('x@0'), withCosts.variableSnapshot('x@0'));
      assert.equal(loaded.variableSnapshot('x@1').bytes, undefined);
    });

    it('refuses a snapshot with only some of them', () => {
      const json = structuredClone(withCosts.toJSON());
      delete json.variableSnapshots[0]?.bytesExact;
      assertInvalid(json, /variableSnapshots\.0: .*all present or all absent/);
    });
  });

  it('loads an empty graph', () => {
    const empty = { formatVersion: 1, cellExecutions: [], variableSnapshots: [], edges: [] };
    assert.deepEqual(new HistoryGraph().toJSON(), empty);
    assert.deepEqual(HistoryGraph.fromJSON(empty).activeSnapshots(), []);
  });

  describe('refuses JSON that is not a valid graph', () => {
    const valid = (): HistoryGraphJson => structuredClone(small.toJSON());

    it('with another format version', () => {
      assertInvalid({ ...valid(), formatVersion: 2 }, /formatVersion/);
    });

    it('with a cell out of place', () => {
      const json = valid();
      json.cellExecutions.reverse();
      assertInvalid(json, /position 0/);
    });

    it('with a snapshot id that does not match its names and version', () => {
      const json = valid();
      json.variableSnapshots[1] = { id: 'y@1', names: ['x'], version: 1, deleted: false };
      assertInvalid(json, /should have the id x@1/);
    });

    it('with a snapshot that has no write edge', () => {
      const json = valid();
      json.edges = json.edges.filter((e) => e.to !== 'x@1');
      assertInvalid(json, /write edge/);
    });

    it('with a read of a snapshot that is not active before the cell (a cycle)', () => {
      const json = valid();
      json.edges.push({ kind: 'read', from: 'x@1', to: 'cell:1' });
      assertInvalid(json, /reads x@1, which is not active/);
    });

    it('with an edge to a cell that does not exist', () => {
      const json = valid();
      json.edges.push({ kind: 'read', from: 'x@1', to: 'cell:7' });
      assertInvalid(json, /cell:7/);
    });
  });
});

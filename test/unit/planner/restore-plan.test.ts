import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { manifestSchema } from '../../../src/agent/agent-messages.js';
import { HistoryGraph } from '../../../src/history/index.js';
import { restorePlanFor } from '../../../src/planner/restore-plan.js';
import { session } from '../history/agent-cells.js';

const SHA = 'a'.repeat(64);

describe('restorePlanFor', () => {
  // [0] big = …   [1] slow = 41   [2] slow += 1   [3] total = big.sum() + slow   [4] log = []   [5] log.append(total)   [6] side effect
  const graph = HistoryGraph.fromCells(
    session(
      ['big = np.arange(10)', { created: ['big'], groups: [['big']] }],
      ['slow = 41', { created: ['slow'], groups: [['slow']] }],
      ['slow += 1', { read: ['slow'], rebound: ['slow'], groups: [['slow']] }],
      ['total = int(big.sum()) + slow', { read: ['big', 'slow'], created: ['total'], groups: [['total']] }],
      ['log = []', { created: ['log'], groups: [['log']] }],
      ['log.append(total)', { read: ['log', 'total'], modified: ['log'], groups: [['log']] }],
      ['send_report()', {}],
    ),
  );
  const manifest = manifestSchema.parse({
    checkpoint_id: 'ck',
    protocol: 1,
    execution_count: 7,
    groups: [
      { key: 'g0', names: ['slow'], serializer: 'pickle', bytes: 10, sha256: SHA },
      { key: 'g1', names: ['total'], serializer: 'pickle', bytes: 10, sha256: SHA },
      { key: 'g2', names: ['log'], serializer: 'pickle', bytes: 10, sha256: SHA },
      { key: 'g3', names: ['made_silently'], serializer: 'pickle', bytes: 10, sha256: SHA },
    ],
    imports: [],
    recompute: [{ name: 'big', type: 'numpy.ndarray', reason: 'the checkpoint plan rebuilds it from history' }],
    variables: [],
    timings: { serialize_s: 0, upload_s: 0 },
  });

  it('re-runs only what rebuilds the recomputed variables, never an unrelated cell', () => {
    assert.deepEqual(restorePlanFor(graph, manifest).rerun, [0]);
  });

  it('binds each stored group after the last cell that changed it, unknown ones first', () => {
    assert.deepEqual(restorePlanFor(graph, manifest).load_after, { g0: 2, g1: 3, g2: 5, g3: -1 });
  });

  it('gives each stored group the cells that would rebuild it alone', () => {
    assert.deepEqual(restorePlanFor(graph, manifest).fallback, { g0: [1, 2], g1: [3], g2: [4, 5] });
  });
});

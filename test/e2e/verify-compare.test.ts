/**
 * How `verify` judges two kernels, on descriptions taken by the real agent from real kernels that
 * were set up to differ in one way each (a restore that worked gives no such pairs to test with).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/agent-client.js';
import type { Description, RestoreReport } from '../../src/agent/agent-messages.js';
import type { LocalKernel } from '../../src/jupyter/local-kernel.js';
import { compareDescriptions } from '../../src/verify/compare-descriptions.js';
import { startKernel } from '../fixtures/kernel.js';

const storedReport = (names: string[]): RestoreReport => ({
  checkpoint_id: 'cp',
  duration_s: 0,
  execution_count: 1,
  variables: names.map((name) => ({ name, status: 'stored' as const })),
});

describe('compareDescriptions on real kernel descriptions', () => {
  let left: LocalKernel;
  let right: LocalKernel;

  before(async () => {
    [left, right] = await Promise.all([startKernel({ withAgent: true }), startKernel({ withAgent: true })]);
  });

  after(async () => {
    await Promise.all([left?.shutdown(), right?.shutdown()]);
  });

  async function describeBoth(leftCode: string, rightCode: string): Promise<[Description, Description]> {
    // A fresh namespace on both sides for each case.
    for (const [kernel, code] of [[left, leftCode], [right, rightCode]] as const) {
      assert.equal((await kernel.channel.execute('%reset -f')).status, 'ok');
      const result = await kernel.channel.execute(code);
      assert.equal(result.status, 'ok', result.error?.evalue);
    }
    return Promise.all([new AgentClient(left.channel).describe(), new AgentClient(right.channel).describe()]);
  }

  it('marks both names as differing when b is a no longer holds, though each value is equal', async () => {
    const [before, after] = await describeBoth('a = [1, 2, 3]\nb = a\nc = 7', 'a = [1, 2, 3]\nb = [1, 2, 3]\nc = 7');
    const result = compareDescriptions(before, after, storedReport(['a', 'b', 'c']));
    assert.deepEqual(
      result.map((v) => [v.name, v.status]),
      [
        ['a', 'differs'],
        ['b', 'differs'],
        ['c', 'equal'],
      ],
    );
    assert.match(result[0]!.detail, /same object as \[b\] before, \[\] after/);
  });

  it('judges a changed value by its value, not by the atoms it happened to share with other names', async () => {
    // `x is y` holds before (both True) and not after (x is False): only x changed.
    const [before, after] = await describeBoth('x = True\ny = True\nn = None\nm = None', 'x = False\ny = True\nn = None\nm = None');
    const result = compareDescriptions(before, after, storedReport(['x', 'y', 'n', 'm']));
    assert.deepEqual(
      result.map((v) => [v.name, v.status, v.detail]),
      [
        ['x', 'differs', 'value differs'],
        ['y', 'equal', ''],
        ['n', 'equal', ''],
        ['m', 'equal', ''],
      ],
    );
  });

  it('tells equal, differing, missing, extra and unfingerprintable variables apart', async () => {
    const [before, after] = await describeBoth(
      'same = {"k": 1}\nchanged = [1, 2]\ngone = 3\ngen = (i for i in range(3))\nretyped = 1',
      'same = {"k": 1}\nchanged = [1, 2, 3]\nextra = 4\ngen = (i for i in range(3))\nretyped = 1.0',
    );
    const report: RestoreReport = {
      ...storedReport(['same', 'changed', 'retyped']),
      variables: [
        ...storedReport(['same', 'changed', 'retyped']).variables,
        { name: 'gone', status: 'failed', error: 'blob g3 is missing' },
        { name: 'gen', status: 'recomputed' },
      ],
    };
    const result = Object.fromEntries(compareDescriptions(before, after, report).map((v) => [v.name, v]));
    assert.equal(result['same']?.status, 'equal');
    assert.equal(result['changed']?.status, 'differs');
    assert.equal(result['retyped']?.status, 'differs');
    assert.match(result['retyped']?.detail ?? '', /type int became float/);
    assert.deepEqual([result['gone']?.status, result['gone']?.restored_by], ['missing', null]);
    assert.match(result['gone']?.detail ?? '', /blob g3 is missing/);
    assert.deepEqual([result['gen']?.status, result['gen']?.restored_by], ['uncomparable', 'recomputed']);
    assert.deepEqual([result['extra']?.status, result['extra']?.detail], ['differs', 'exists only in the restored kernel']);
  });
});

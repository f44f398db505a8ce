import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nondeterministicCall } from '../../../src/planner/nondeterministic-cells.js';

describe('nondeterministicCall', () => {
  it('finds random draws, clocks, UUIDs and OS entropy written in a cell', () => {
    const cases: Array<[string, string]> = [
      ['x = random.random()', 'random.random'],
      ['arr = np.random.rand(3, 3)', 'random.rand'],
      ['from random import shuffle\nshuffle(items)', 'shuffle'],
      ['picked = df.sample(10)', 'sample'],
      ['rng = np.random.default_rng()', 'default_rng'],
      ['run_id = uuid.uuid4().hex', 'uuid4'],
      ['started = datetime.datetime.now()', 'now'],
      ['t0 = time.time()', 'time.time'],
      ['key = secrets.token_hex(16)', 'secrets.token_hex'],
    ];
    for (const [code, call] of cases) assert.equal(nondeterministicCall(code), call, code);
  });

  it('takes a cell that seeds its own generator as reproducible, but not its clock reads', () => {
    assert.equal(nondeterministicCall('np.random.seed(0)\nx = np.random.rand(3)'), null);
    assert.equal(nondeterministicCall('rng = np.random.default_rng(42)\nx = rng.normal(size=3)'), null);
    assert.equal(nondeterministicCall('part = df.sample(10, random_state=1)'), null);
    assert.equal(nondeterministicCall('random.seed(1)\nt = time.time()\nx = random.random()'), 'time.time');
  });

  it('ignores calls that are only named in comments and strings, and ordinary code', () => {
    assert.equal(nondeterministicCall('# x = random.random() would differ\nx = 1'), null);
    assert.equal(nondeterministicCall('print("call random.random() for noise")'), null);
    assert.equal(nondeterministicCall('doc = """\nuses time.time()\n"""\ny = x + 1'), null);
    assert.equal(nondeterministicCall("s = 'it\\'s random.random()'"), null);
    assert.equal(nondeterministicCall('total = df.groupby("g").a.sum()\nsquares = [i * i for i in range(10)]'), null);
    assert.equal(nondeterministicCall('draws = rng.random(1000)'), null, 'a generator object is state the history graph tracks');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unrepeatableCall } from '../../../src/planner/unrepeatable-cells.js';

const callOf = (code: string) => unrepeatableCall(code)?.call ?? null;

describe('unrepeatableCall', () => {
  it('finds random draws, clocks, UUIDs and OS entropy: a re-run gives other values', () => {
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
    for (const [code, call] of cases) assert.deepEqual(unrepeatableCall(code), { call, kind: 'values' }, code);
  });

  it('finds actions outside the kernel: a re-run repeats them', () => {
    const cases: Array<[string, string]> = [
      ["with open('log.txt', 'a') as f:\n    f.write('ran\\n')", 'f.write'],
      ["df.to_csv('out.csv')", 'to_csv'],
      ["fig.savefig('plot.png')", 'savefig'],
      ["os.remove('old.csv')", 'os.remove'],
      ["shutil.rmtree('build')", 'shutil.rmtree'],
      ["subprocess.run(['make'])", 'subprocess.run'],
      ["requests.post(url, json=payload)", 'requests.post'],
      ['!rm -rf out/', '!rm'],
      ['%%bash\necho hi > f', '%%bash'],
    ];
    for (const [code, call] of cases) assert.deepEqual(unrepeatableCall(code), { call, kind: 'effects' }, code);
  });

  it('takes a cell that seeds its own generator as reproducible, but not its clock reads', () => {
    assert.equal(callOf('np.random.seed(0)\nx = np.random.rand(3)'), null);
    assert.equal(callOf('rng = np.random.default_rng(42)\nx = rng.normal(size=3)'), null);
    assert.equal(callOf('part = df.sample(10, random_state=1)'), null);
    assert.equal(callOf('random.seed(1)\nt = time.time()\nx = random.random()'), 'time.time');
  });

  it('ignores calls that are only named in comments and strings, and ordinary code', () => {
    assert.equal(callOf('# x = random.random() would differ\nx = 1'), null);
    assert.equal(callOf('print("call random.random() for noise")'), null);
    assert.equal(callOf('doc = """\nuses time.time() and f.write(x)\n"""\ny = x + 1'), null);
    assert.equal(callOf("s = 'it\\'s random.random()'"), null);
    assert.equal(callOf('total = df.groupby("g").a.sum()\nsquares = [i * i for i in range(10)]\nok = a != b'), null);
    assert.equal(callOf('draws = rng.random(1000)'), null, 'a generator object is state the history graph tracks');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { HistoryGraph } from '../../../src/history/index.js';
import type { CostModel } from '../../../src/planner/cost-model.js';
import { explainReplication, planReplication, type ReplicationPlan } from '../../../src/planner/replication-planner.js';
import { session, type AgentCellFields } from '../history/agent-cells.js';

/** Costs in the tests' own units: 10 bytes take 1 s to write and 1/4 s to read. */
const MODEL: CostModel = { writeBytesPerS: 10, readBytesPerS: 40, writeBlobS: 0, readBlobS: 0, alpha: 1, unknownRuntimeS: 3600 };

const cost = (bytes: number, serializable = true, name = 'x') => ({
  bytes,
  bytes_exact: true,
  serializable,
  unserializable: serializable ? [] : [{ name, reason: "TypeError: cannot pickle 'generator' object" }],
});

/** A cell that creates `names` (one group each, `bytes` each), reading `read`, running `seconds`. */
function makes(names: string[], bytes: number, seconds: number, read: string[] = []): AgentCellFields {
  return {
    created: names,
    read,
    groups: names.map((n) => [n]),
    group_costs: names.map(() => cost(bytes)),
    duration_s: seconds,
  };
}

function decisions(plan: ReplicationPlan): Record<string, string> {
  return Object.fromEntries(plan.groups.map((g) => [g.names.join(','), g.decision]));
}

/** Paper Fig 3, with every reload a quarter of its store time (one bandwidth pair for all groups). */
function paperFigure3(): HistoryGraph {
  // Minutes as seconds: store df 8, df_train 6.4, df_test 1.6, model 0.2, plot 0.1 (bytes: ten times that).
  return HistoryGraph.fromCells(
    session(
      ['df = load()', makes(['df'], 80, 3)],
      [
        'df_train, df_test = split(df)',
        {
          read: ['df'],
          created: ['df_test', 'df_train'],
          groups: [['df_test'], ['df_train']],
          group_costs: [cost(16), cost(64)],
          duration_s: 1,
        },
      ],
      ['model = train(df_train)', makes(['model'], 2, 20, ['df_train'])],
      ['plot = evaluate(model, df_test)', makes(['plot'], 1, 10, ['df_test', 'model'])],
    ),
  );
}

describe('planReplication', () => {
  describe('worked examples (ElasticNotebook digest §2.4)', () => {
    it('paper Fig 3, migration-centric (α = 1): store model and plot, re-run cells 1 and 2', () => {
      const plan = planReplication(paperFigure3(), MODEL);
      assert.deepEqual(decisions(plan), { df: 'recompute', df_test: 'recompute', df_train: 'recompute', model: 'store', plot: 'store' });
      assert.deepEqual(plan.rerunCells, [0, 1]);
      // (0.2 + 0.1) · 1.25 to store and load, 3 + 1 to re-run.
      assert.ok(Math.abs(plan.costS - 4.375) < 1e-9, String(plan.costS));
      assert.ok(Math.abs(plan.predicted.restoreS - 4.075) < 1e-9, String(plan.predicted.restoreS));
    });

    it('paper Fig 3, restore-centric (α = 0.05): store df, model and plot, re-run cell 2 only', () => {
      const plan = planReplication(paperFigure3(), { ...MODEL, alpha: 0.05 });
      assert.deepEqual(decisions(plan), { df: 'store', df_test: 'recompute', df_train: 'recompute', model: 'store', plot: 'store' });
      assert.deepEqual(plan.rerunCells, [1]);
      assert.ok(Math.abs(plan.predicted.restoreS - (8.3 / 4 + 1)) < 1e-9, String(plan.predicted.restoreS));
    });

    it('the unit-test problem: recomputing both x and y (3.2) beats storing them (4), which greedy misses', () => {
      const graph = HistoryGraph.fromCells(
        session(
          ['z = expensive()', makes(['z'], 10, 3)],
          ['x = f(z)', makes(['x'], 20, 0.1, ['z'])],
          ['y = g(z)', makes(['y'], 20, 0.1, ['z'])],
          ['del z', { deleted: ['z'] }],
        ),
      );
      const plan = planReplication(graph, { ...MODEL, readBytesPerS: Infinity });
      assert.deepEqual(decisions(plan), { x: 'recompute', y: 'recompute' });
      assert.deepEqual(plan.rerunCells, [0, 1, 2]);
      assert.ok(Math.abs(plan.costS - 3.2) < 1e-9);
      // Each alone would cost 3.1 to rebuild against 2 to store: the reason says the cells are shared.
      const explained = explainReplication(graph, plan);
      assert.match(explained.groups[0]?.reason ?? '', /other rebuilt groups need those cells too/);
      assert.deepEqual(explained.groups[0]?.recomputeCells, [0, 1]);
      assert.ok(Math.abs((explained.groups[0]?.recomputeCostS ?? 0) - 3.1) < 1e-9);
    });
  });

  it('stores a big value from a slow cell and rebuilds a big array from a fast cell', () => {
    const mb = 1024 * 1024;
    const graph = HistoryGraph.fromCells(
      session(
        ['arr = np.ones(500 * 2**20 // 8)', makes(['arr'], 500 * mb, 0.4)],
        ['result = slow(arr[:10])', makes(['result'], 100, 120, ['arr'])],
      ),
    );
    const plan = planReplication(graph, { writeBytesPerS: 95 * mb, readBytesPerS: 200 * mb, writeBlobS: 0, readBlobS: 0, alpha: 0.05, unknownRuntimeS: 3600 });
    assert.deepEqual(decisions(plan), { arr: 'recompute', result: 'store' });
    assert.deepEqual(plan.rerunCells, [0]);
    assert.match(plan.groups.find((g) => g.names[0] === 'arr')?.reason ?? '', /^re-running the cells it needs costs less than storing it \(/);
    const explained = explainReplication(graph, plan);
    assert.match(explained.groups.find((g) => g.names[0] === 'arr')?.reason ?? '', /^rebuilding it re-runs cell \[1\] \(0\.40 s\), less than storing it costs/);
    assert.match(explained.groups.find((g) => g.names[0] === 'result')?.reason ?? '', /^storing it costs under 0\.1 ms, less than rebuilding it re-runs cell \[2\] \(120\.00 s\)$/);
  });

  it('rebuilds what cannot be stored, and says why', () => {
    const graph = HistoryGraph.fromCells(
      session(
        ['l1 = [1, 2, 3]', makes(['l1'], 40, 0.1)],
        ['gen = (i for i in l1)', { ...makes(['gen'], 0, 0.1, ['l1']), group_costs: [cost(0, false, 'gen')] }],
      ),
    );
    const plan = planReplication(graph, MODEL);
    const gen = plan.groups.find((g) => g.names.includes('gen'));
    assert.equal(gen?.decision, 'recompute');
    assert.match(gen?.reason ?? '', /cannot be stored/);
    assert.equal(gen?.storeCostS, null);
  });

  describe('cell marks', () => {
    const graphWith = (first: string, second: string, serializable = true) =>
      HistoryGraph.fromCells(
        session(
          [first, { ...makes(['big'], 1000, 0.1), group_costs: [cost(1000, serializable, 'big')] }],
          [second, makes(['small'], 1, 0.1, ['big'])],
        ),
      );

    it('stores what a never-rerun cell made, however big', () => {
      const graph = graphWith('# resume: never-rerun\nbig = send_email()', 'small = 1');
      const plan = planReplication(graph, MODEL);
      assert.equal(decisions(plan)['big'], 'store');
      const explained = explainReplication(graph, plan);
      assert.match(explained.groups[0]?.reason ?? '', /^rebuilding it would re-run cell \[1\], which is marked never-rerun$/);
      assert.equal(explained.groups[0]?.recomputeCells, null);
    });

    it('honours never-rerun and always-store notebook tags as well as comments', () => {
      const tags = new Map([[0, ['never-rerun']]]);
      const tagged = graphWith('big = 1', 'small = 1');
      const byTag = planReplication(tagged, MODEL, { tags });
      assert.equal(decisions(byTag)['big'], 'store');
      // The plan keeps the tags it honoured, so its stored form explains itself without the notebook.
      assert.deepEqual(JSON.parse(JSON.stringify(byTag)).cellTags, { 0: ['never-rerun'] });
      assert.match(explainReplication(tagged, byTag).groups[0]?.reason ?? '', /which is marked never-rerun$/);
      const plan = planReplication(graphWith('big = 1', '# resume: always-store\nsmall = 2'), { ...MODEL, alpha: 1000 });
      assert.equal(decisions(plan)['small'], 'store');
      assert.match(plan.groups[1]?.reason ?? '', /always-store/);
    });

    it('reports an impossible plan with the variable and the cell that block it', () => {
      const graph = graphWith('# resume: never-rerun\nbig = (i for i in range(3))', 'small = 1', false);
      assert.throws(
        () => planReplication(graph, MODEL),
        (e: unknown) => {
          assert.ok(isResumeError(e));
          assert.equal(e.code, 'RESUME_ERR_PLAN_IMPOSSIBLE');
          assert.equal(e.status, 409);
          assert.match(e.message, /^big cannot be stored \(TypeError: cannot pickle 'generator' object\) and rebuilding it needs cell \[1\], marked never-rerun\.$/);
          assert.deepEqual(e.context, { variable: 'big', cell: 0 });
          return true;
        },
      );
      assert.throws(() => planReplication(graphWith('# resume: always-store\nbig = g()', 'small = 1', false), MODEL), {
        message: /big must be stored \(cell \[1\] is marked always-store\)/,
      });
      assert.throws(() => planReplication(graphWith('# resume: never-rerun\nbig = 1', 'small = 1'), MODEL, { strategy: 'recompute-all' }), {
        message: /The recompute-all plan would rebuild big, which needs cell \[1\], marked never-rerun/,
      });
    });
  });

  it('counts a fixed time per stored blob: many small values from fast cells are rebuilt, not stored one blob each', () => {
    const cells = Array.from({ length: 100 }, (_, i): [string, AgentCellFields] => [`v${i} = ${i} * 2`, makes([`v${i}`], 30, 0.001)]);
    const graph = HistoryGraph.fromCells(session(...cells));
    const model: CostModel = { writeBytesPerS: 100e6, readBytesPerS: 200e6, writeBlobS: 0, readBlobS: 0, alpha: 0.05, unknownRuntimeS: 3600 };
    // Bytes alone: 30 bytes cost nanoseconds to store, less than a 1 ms re-run.
    assert.ok(planReplication(graph, model).groups.every((g) => g.decision === 'store'));
    // With 5 ms to read a blob back (and 10 ms to write one), re-running each 1 ms cell is cheaper.
    const plan = planReplication(graph, { ...model, writeBlobS: 0.01, readBlobS: 0.005 });
    assert.ok(plan.groups.every((g) => g.decision === 'recompute'));
    assert.ok(Math.abs(plan.predicted.restoreS - 0.1) < 1e-9, String(plan.predicted.restoreS));
    assert.ok(Math.abs(planReplication(graph, { ...model, writeBlobS: 0.01, readBlobS: 0.005 }, { strategy: 'store-all' }).predicted.loadS - 0.5) < 1e-4);
  });

  describe('cells a re-run would not repeat faithfully', () => {
    it('stores what a cell that writes a file made rather than writing the file again', () => {
      const graph = HistoryGraph.fromCells(
        session(["with open('log.txt', 'a') as f:\n    f.write('ran')\nlines = 1", makes(['f', 'lines'], 1000, 0.001)]),
      );
      const plan = planReplication(graph, MODEL);
      assert.deepEqual(decisions(plan), { f: 'store', lines: 'store' });
      assert.equal(plan.groups[0]?.reason, 're-running cell [1] (it calls f.write()) would repeat what it did outside the kernel');
      assert.deepEqual(plan.rerunCells, []);
    });

    it('stores what an unseeded random cell made even when re-running it is cheaper', () => {
      const graph = HistoryGraph.fromCells(session(['x = np.random.rand(1000)', makes(['x'], 1000, 0.001)]));
      const plan = planReplication(graph, MODEL);
      assert.deepEqual(decisions(plan), { x: 'store' });
      assert.equal(plan.groups[0]?.reason, 're-running cell [1] (it calls random.rand()) would give other values');
      // The same cell seeded by itself reproduces its draw: rebuilding is cheaper, so it is rebuilt.
      const seeded = HistoryGraph.fromCells(session(['np.random.seed(0)\nx = np.random.rand(1000)', makes(['x'], 1000, 0.001)]));
      assert.deepEqual(decisions(planReplication(seeded, MODEL)), { x: 'recompute' });
    });

    it('stores a value that rebuilding would derive from another run of a random cell', () => {
      // y's rebuild needs the x that cell 1 drew, which a later cell rebound: re-running cell 1 draws another x.
      const graph = HistoryGraph.fromCells(
        session(
          ['x = random.random()', makes(['x'], 1, 0.001)],
          ['y = [x] * 100', makes(['y'], 1000, 0.001, ['x'])],
          ['x = 0', { rebound: ['x'], groups: [['x']], group_costs: [cost(1)] }],
        ),
      );
      assert.deepEqual(decisions(planReplication(graph, MODEL)), { x: 'recompute', y: 'store' });
    });

    it('keeps the stored value of a random cell that must re-run for something unserializable, and says so', () => {
      // As test/notebooks/differs.ipynb: the generator is rebuilt, the sample drawn from it is loaded after.
      const graph = HistoryGraph.fromCells(
        session([
          'samples = (random.random() for _ in range(9))\nfirst = next(samples)',
          { created: ['first', 'samples'], groups: [['first'], ['samples']], group_costs: [cost(1), cost(0, false, 'samples')], duration_s: 0.001 },
        ]),
      );
      const plan = planReplication(graph, MODEL);
      assert.deepEqual(decisions(plan), { first: 'store', samples: 'recompute' });
      const explained = explainReplication(graph, plan);
      assert.equal(
        explained.groups.find((g) => g.names[0] === 'samples')?.reason,
        "it cannot be stored (samples: TypeError: cannot pickle 'generator' object); re-running cell [1] (it calls random.random()) may give other values",
      );
    });
  });

  it('offers the two baselines', () => {
    const graph = paperFigure3();
    const all = planReplication(graph, MODEL, { strategy: 'store-all' });
    assert.ok(all.groups.every((g) => g.decision === 'store'));
    assert.deepEqual(all.rerunCells, []);
    const none = planReplication(graph, MODEL, { strategy: 'recompute-all' });
    assert.ok(none.groups.every((g) => g.decision === 'recompute'));
    assert.deepEqual(none.rerunCells, [0, 1, 2, 3]);
    assert.equal(none.predicted.rerunS, 34);
    const optimal = planReplication(graph, MODEL);
    assert.ok(optimal.costS <= all.costS && optimal.costS <= none.costS);
  });

  it('equals the brute-force optimum on 200 random sessions', () => {
    const next = seeded(11);
    for (let trial = 0; trial < 200; trial++) {
      const graph = HistoryGraph.fromCells(randomSession(next));
      const model = { ...MODEL, alpha: next() < 0.5 ? 1 : 0.05 };
      const plan = planReplication(graph, model);
      const best = bruteForce(graph, model);
      assert.ok(Math.abs(plan.costS - best) < 1e-9, `trial ${trial}: plan ${plan.costS}, best ${best}`);
    }
  });
});

/** The cheapest feasible store set, trying them all (every unserializable group is rebuilt). */
function bruteForce(graph: HistoryGraph, model: CostModel): number {
  const active = graph.activeSnapshots();
  let best = Infinity;
  for (let mask = 0; mask < 1 << active.length; mask++) {
    const stored = active.filter((_, i) => (mask & (1 << i)) !== 0);
    if (stored.some((s) => s.serializable === false)) continue;
    const rebuilt = active.filter((_, i) => (mask & (1 << i)) === 0);
    const bytes = stored.reduce((sum, s) => sum + (s.bytes ?? 0), 0);
    const rerun = graph.cellsToRecompute(rebuilt).reduce((sum, c) => sum + c.durationS, 0);
    best = Math.min(best, (model.alpha * bytes) / model.writeBytesPerS + bytes / model.readBytesPerS + rerun);
  }
  return best;
}

/** 2-7 cells over 5 names: each reads a few live names, creates or rebinds one or two, may change one in place or delete one. */
function randomSession(next: () => number) {
  const names = ['a', 'b', 'c', 'd', 'e'];
  const live = new Set<string>();
  const cells: Array<[string, AgentCellFields]> = [];
  const cellCount = 2 + Math.floor(next() * 6);
  for (let i = 0; i < cellCount; i++) {
    const read = [...live].filter(() => next() < 0.5).sort();
    const written = names.filter(() => next() < 0.3).slice(0, 2);
    if (written.length === 0) written.push(names[Math.floor(next() * names.length)] as string);
    const created = written.filter((n) => !live.has(n));
    const rebound = written.filter((n) => live.has(n));
    const modified = read.filter((n) => !written.includes(n) && next() < 0.3).slice(0, 1);
    const deleted = [...live].filter((n) => !written.includes(n) && !modified.includes(n) && next() < 0.1).slice(0, 1);
    const groups = [...written, ...modified].sort().map((n) => [n]);
    for (const n of written) live.add(n);
    for (const n of deleted) live.delete(n);
    cells.push([
      `cell ${i}`,
      {
        read,
        created,
        rebound,
        modified,
        deleted,
        groups,
        group_costs: groups.map(() => cost(Math.round(next() * 40), next() > 0.1)),
        duration_s: Math.round(next() * 50) / 10,
      },
    ]);
  }
  return session(...cells);
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

/**
 * Planner benchmark: how long the replication plan takes for sessions of 2,000 and 20,000 cell
 * executions (issue targets: under 20 ms and 300 ms), written to bench/results/planner.json
 * (BENCH_RESULT overrides).
 *
 * Sessions are generated with a fixed seed, in two shapes:
 * - `notebook-like`: 200 names; each cell reads one to three names written in the last 20 cells
 *   and writes one, often rebinding what it read (`df = df.dropna()`): long chains of versions.
 * - `random`: names from a pool of n / 4, reads drawn from every name written so far: the
 *   dependency closures span most of the history (the worst case for req()).
 * Every group has a size (up to 1 GB) and 2% cannot be serialized; cells run 0–2 s.
 *
 * Timed: `HistoryGraph.fromCells` (building the graph from records, as the service does from
 * Postgres), `planReplication` (what a checkpoint waits for), and `explainReplication` (the
 * per-group explanation the API shows, which walks the history once per group). Each is run
 * 7 times on the same records; the median and the first (cold) run are reported.
 *
 * Then the migration time of the plans on real notebooks (`plan-migration.ts`): checkpoint +
 * restore of optimal, store-all and recompute-all through the service and embedded Postgres.
 * BENCH_MIGRATION=0 skips it (plan time only); BENCH_NOTEBOOKS=typical,big-arrays runs only those.
 */
import { rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { HistoryGraph } from '../src/history/index.js';
import { DEFAULT_ALPHA, DEFAULT_UNKNOWN_RUNTIME_S, type CostModel } from '../src/planner/cost-model.js';
import { explainReplication, planReplication } from '../src/planner/replication-planner.js';
import { ASSUMED_BANDWIDTH } from '../src/planner/store-bandwidth.js';
import type { CellRecord } from '../src/store/checkpoint-store.js';
import type { BenchKernel } from './bench-kernel.js';
import { startBenchService, type BenchService } from './bench-service.js';
import { measureMigrations, type MigrationResult } from './plan-migration.js';

const RUNS = 7;
const TARGETS_MS: Record<number, number> = { 2000: 20, 20000: 300 };
/** The Postgres path measured by bench/roundtrip.ts on this machine, with the assumed per-blob times. */
const MODEL: CostModel = {
  writeBytesPerS: 95e6,
  readBytesPerS: 202e6,
  writeBlobS: ASSUMED_BANDWIDTH.writeBlobS,
  readBlobS: ASSUMED_BANDWIDTH.readBlobS,
  alpha: DEFAULT_ALPHA,
  unknownRuntimeS: DEFAULT_UNKNOWN_RUNTIME_S,
};

type Shape = 'notebook-like' | 'random';

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

/** The records of a generated session (see the module doc). */
function generateSession(cells: number, shape: Shape): CellRecord[] {
  const next = seeded(cells + (shape === 'random' ? 1 : 0));
  const pool = shape === 'random' ? Math.max(1, Math.floor(cells / 4)) : 200;
  const written: string[] = [];
  const live = new Set<string>();
  const records: CellRecord[] = [];
  for (let i = 0; i < cells; i++) {
    const recent = shape === 'random' ? written : written.slice(-20);
    const read = [...new Set(Array.from({ length: 1 + Math.floor(next() * 3) }, () => recent[Math.floor(next() * recent.length)]))]
      .filter((name): name is string => name !== undefined && live.has(name))
      .sort();
    const name = shape === 'notebook-like' && read.length > 0 && next() < 0.5 ? (read[0] as string) : `v${Math.floor(next() * pool)}`;
    const rebinding = live.has(name);
    live.add(name);
    written.push(name);
    const serializable = next() > 0.02;
    records.push({
      seq: i + 1,
      executionCount: i + 1,
      code: `${name} = step_${i}(${read.join(', ')})`,
      startedAt: new Date(Date.UTC(2026, 10, 21, 12, 0, 0) + i * 1000),
      durationS: Math.round(next() * 2000) / 1000,
      status: 'ok',
      error: null,
      created: rebinding ? [] : [name],
      deleted: [],
      rebound: rebinding ? [name] : [],
      read,
      readAll: false,
      modified: [],
      groups: [[name]],
      groupCosts: [
        {
          bytes: Math.floor(next() ** 4 * 1e9),
          bytesExact: true,
          serializable,
          unserializable: serializable ? [] : [{ name, reason: "TypeError: cannot pickle 'generator' object" }],
        },
      ],
      effectsKnown: true,
      timingKnown: true,
    });
  }
  return records;
}

function timed<T>(work: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = work();
  return { value, ms: performance.now() - t0 };
}

function sample(runs: number[]): { median: number; first: number; min: number; max: number } {
  const sorted = [...runs].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 100) / 100;
  return { median: r(sorted[Math.floor(sorted.length / 2)] as number), first: r(runs[0] as number), min: r(sorted[0] as number), max: r(sorted.at(-1) as number) };
}

function measure(cells: number, shape: Shape) {
  const records = generateSession(cells, shape);
  const build: number[] = [];
  const plan: number[] = [];
  const explain: number[] = [];
  let summary = { active_groups: 0, stored: 0, recomputed: 0, rerun_cells: 0, predicted_restore_s: 0, store_all_restore_s: 0, recompute_all_restore_s: 0 };
  for (let run = 0; run < RUNS; run++) {
    const graph = timed(() => HistoryGraph.fromCells(records));
    build.push(graph.ms);
    const optimal = timed(() => planReplication(graph.value, MODEL));
    plan.push(optimal.ms);
    explain.push(timed(() => explainReplication(graph.value, optimal.value)).ms);
    if (run === 0) {
      const p = optimal.value;
      summary = {
        active_groups: p.groups.length,
        stored: p.groups.filter((g) => g.decision === 'store').length,
        recomputed: p.groups.filter((g) => g.decision === 'recompute').length,
        rerun_cells: p.rerunCells.length,
        predicted_restore_s: Math.round(p.predicted.restoreS * 100) / 100,
        store_all_restore_s: Math.round(planReplication(graph.value, MODEL, { strategy: 'store-all' }).predicted.restoreS * 100) / 100,
        recompute_all_restore_s: Math.round(planReplication(graph.value, MODEL, { strategy: 'recompute-all' }).predicted.restoreS * 100) / 100,
      };
    }
  }
  const planMs = sample(plan);
  const target = TARGETS_MS[cells];
  return {
    cells,
    shape,
    ...summary,
    build_graph_ms: sample(build),
    plan_ms: planMs,
    explain_ms: sample(explain),
    target_plan_ms: target ?? null,
    met: target === undefined ? null : planMs.median < target,
  };
}

async function main(): Promise<number> {
  const resultPath = process.env['BENCH_RESULT'] ?? join(dirname(fileURLToPath(import.meta.url)), 'results', 'planner.json');
  const startedAt = performance.now();
  const results = [];
  for (const cells of [2000, 20000]) {
    for (const shape of ['notebook-like', 'random'] as const) {
      const r = measure(cells, shape);
      results.push(r);
      process.stdout.write(
        `${cells} cells, ${shape}: plan median ${r.plan_ms.median} ms (first ${r.plan_ms.first}), explain ${r.explain_ms.median} ms, graph ${r.build_graph_ms.median} ms; ${r.stored} stored, ${r.recomputed} rebuilt by ${r.rerun_cells} cells\n`,
      );
    }
  }
  const migration = process.env['BENCH_MIGRATION'] === '0' ? null : await migrations();
  if (migration !== null) {
    for (const n of migration.notebooks) {
      const times = Object.entries(n.plans).map(([label, p]) => `${label} ${p.migration_s} s (restore ${p.restore_s} s)`);
      process.stdout.write(`${n.name}: ${times.join(', ')}\n`);
    }
    process.stdout.write(`migration ratios over all notebooks: ${JSON.stringify(migration.totals.ratios.migration)}\n`);
  }
  const allEqual = migration?.notebooks.every((n) => Object.values(n.plans).every((p) => p.all_equal)) ?? true;
  const cpus = os.cpus();
  const result = {
    benchmark: 'planner',
    generated_at: new Date().toISOString(),
    duration_s: Math.round((performance.now() - startedAt) / 10) / 100,
    machine: { cpu_model: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, node: process.version, os: `${os.type()} ${os.release()}` },
    cost_model: MODEL,
    method: [
      'Generated sessions (see bench/planner.ts): notebook-like (reads from the last 20 cells, frequent rebinding) and random (reads from anywhere: closures span most of the history).',
      `Each step run ${RUNS} times in one Node process on the same records; median, first (cold, before JIT) run, min and max in ms.`,
      'plan_ms: planReplication (optimal: min cut), what a checkpoint waits for. explain_ms: explainReplication, the per-group explanation for the API. build_graph_ms: HistoryGraph.fromCells.',
      'Targets (issue 4): plan under 20 ms at 2,000 cell executions and under 300 ms at 20,000, on the median.',
      'migration: the bench notebooks (bench/overhead-notebooks.ts) and fast-big-slow-small, each run once in a kernel with the agent; then per plan, a session of its own, CheckpointRunner (that plan, over the Postgres bandwidth measured once at the start) through the real web app into embedded Postgres, and a fresh kernel restored by RestoreHandout\'s plan. migration_s = checkpoint + restore wall time; kernel start-up not timed. all_equal: every variable of the restored kernel equal to the source (agent describe, as verify compares).',
    ],
    results,
    migration,
    all_met: results.every((r) => r.met !== false),
    all_restores_equal: allEqual,
  };
  await mkdir(dirname(resultPath), { recursive: true });
  await writeFile(resultPath, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`written to ${relative(process.cwd(), resultPath) || resultPath}\n`);
  return allEqual ? 0 : 1;
}

/** The migration part, with its own Postgres, service and kernels, all removed afterwards. */
async function migrations(): Promise<MigrationResult> {
  const root = await mkdtemp(join(os.tmpdir(), 'jhr-bench-planner-'));
  // Postgres runs as the `postgres` OS user when we are root; its data dir is inside.
  await chmod(root, 0o755);
  const removeRootSync = () => rmSync(root, { recursive: true, force: true });
  process.once('exit', removeRootSync);
  const kernels = new Set<BenchKernel>();
  let service: BenchService | undefined;
  try {
    service = await startBenchService(join(root, 'postgres'));
    return await measureMigrations(
      service,
      {
        track: (k) => void kernels.add(k),
        untrack: async (k) => {
          await k.shutdown();
          kernels.delete(k);
        },
      },
      (message) => process.stderr.write(`bench: ${message}\n`),
      process.env['BENCH_NOTEBOOKS']?.split(',').map((name) => name.trim()),
    );
  } finally {
    await Promise.all([...kernels].map((k) => k.shutdown()));
    await service?.stop();
    await rm(root, { recursive: true, force: true });
    process.off('exit', removeRootSync);
  }
}

process.exitCode = await main();

/**
 * Migration time of the replication plans on real notebooks: for each bench notebook, the whole
 * checkpoint + restore of `optimal`, `store-all` and `recompute-all`, through the product path, in
 * the same run on the same kernel state (issue 4's benchmark; written into planner.json).
 *
 * The plans: `optimal` as the service runs it by default (α = 0.05, restore-centric),
 * `optimal-alpha-1` (α = 1: the plan that minimises exactly this migration time), and the two
 * baselines. Per notebook, one source kernel runs the cells; then per plan:
 * 1. a session of its own (so no plan reuses another's blobs: every checkpoint is a first one),
 *    and a `CheckpointRunner` following that plan over the store's bandwidth measured at start;
 * 2. the runner checkpoints the source kernel through the real web app into embedded Postgres;
 * 3. a fresh kernel claims it through `RestoreHandout` and restores by the handed-out plan;
 * 4. the restored kernel is described and compared variable by variable with the source (the
 *    comparison `verify` makes).
 * Kernel start-up is not timed; `migration_s` is checkpoint + restore wall time. A small notebook
 * goes through every plan first, unreported, so no plan pays for warming up Node or Postgres.
 */
import { performance } from 'node:perf_hooks';
import { manifestSchema, type RestoreReport } from '../src/agent/agent-messages.js';
import type { CheckpointRunner } from '../src/checkpoint/checkpoint-runner.js';
import { ResumeError } from '../src/errors.js';
import { DEFAULT_ALPHA } from '../src/planner/cost-model.js';
import type { PlanStrategy, ReplicationPlan } from '../src/planner/replication-planner.js';
import { StoreBandwidth } from '../src/planner/store-bandwidth.js';
import { compareDescriptions } from '../src/verify/compare-descriptions.js';
import { BenchKernel } from './bench-kernel.js';
import type { BenchService } from './bench-service.js';
import { overheadNotebooks, type OverheadNotebook } from './overhead-notebooks.js';

/** What one plan cost on one notebook. */
export type PlanMigration = {
  checkpoint_s: number;
  restore_s: number;
  migration_s: number;
  bytes_stored: number;
  groups_stored: number;
  groups_rebuilt: number;
  cells_rerun: number;
  /** Inside the agent: pickling and grouping, and writing the blobs (manifest timings). */
  agent_checkpoint: { serialize_s: number; upload_s: number };
  /** Inside the agent: reading the stored groups, and re-running cells (restore report timings). */
  agent_restore: { load_s: number; rerun_s: number } | null;
  /** The plan's own prediction of the restore, to hold against `restore_s`. */
  predicted_restore_s: number | null;
  /** Every variable came back equal (or uncomparable: a generator). */
  all_equal: boolean;
  /** The variables that did not, with why. */
  problems: string[];
};

/** The plans compared, by label. */
const PLANS = [
  { label: 'optimal', strategy: 'optimal', alpha: DEFAULT_ALPHA },
  { label: 'optimal-alpha-1', strategy: 'optimal', alpha: 1 },
  { label: 'store-all', strategy: 'store-all', alpha: DEFAULT_ALPHA },
  { label: 'recompute-all', strategy: 'recompute-all', alpha: DEFAULT_ALPHA },
] as const satisfies ReadonlyArray<{ label: string; strategy: PlanStrategy; alpha: number }>;
type PlanLabel = (typeof PLANS)[number]['label'];

/** Each optimal plan's time ÷ each baseline's (under 1: the optimal plan was faster). */
type Ratios = Record<`${'optimal' | 'optimal-alpha-1'} ÷ ${'store-all' | 'recompute-all'}`, number>;

export type NotebookMigration = {
  name: string;
  description: string;
  cells: number;
  plans: Record<PlanLabel, PlanMigration>;
  /** Of migration time (checkpoint + restore) and of restore time alone. */
  ratios: { migration: Ratios; restore: Ratios };
};

export type MigrationResult = {
  bandwidth: { write_mb_s: number; read_mb_s: number };
  notebooks: NotebookMigration[];
  /** Migration and restore seconds summed over the notebooks, and the ratios of those sums. */
  totals: { migration_s: Record<PlanLabel, number>; restore_s: Record<PlanLabel, number>; ratios: { migration: Ratios; restore: Ratios } };
};

/** The bench notebooks plus the issue's own example: a big array from a fast cell, a small value from a slow one. */
export function migrationNotebooks(): OverheadNotebook[] {
  return [
    ...overheadNotebooks(),
    {
      name: 'fast-big-slow-small',
      description: 'a 500 MB float64 array made by one fast cell, and a small value made by a 4 s cell (time.sleep), then a cell reading both',
      cells: [
        'import time\nimport numpy as np',
        'big = np.arange(62_500_000, dtype=np.float64)',
        'time.sleep(4)\nslow_result = {"answer": 42}',
        'summary = float(big[:1000].sum()) + slow_result["answer"]',
      ],
    },
  ];
}

/**
 * @param service a started bench service (its Postgres is the blob store measured).
 * @param kernels the caller's kernel bookkeeping (every kernel is shut down whatever happens).
 * @param only the names of the notebooks to run (default: all).
 */
export async function measureMigrations(
  service: BenchService,
  kernels: { track: (kernel: BenchKernel) => void; untrack: (kernel: BenchKernel) => Promise<void> },
  progress: (message: string) => void,
  only?: readonly string[],
): Promise<MigrationResult> {
  progress('measuring the blob store');
  const measured = await service.blobs.measureBandwidth(32 * 1024 * 1024);
  // Bytes per second fixed for the whole run, so every plan of every notebook is made on the same
  // bandwidth; the per-blob times are learned from checkpoints and restores, as in the service.
  const bandwidth = new StoreBandwidth(measured);
  const runners = new Map(PLANS.map((p) => [p.label, service.plannedCheckpoints(p.strategy, bandwidth, p.alpha)]));

  // Forty small values: the store-all pass teaches the per-blob times, as a service's first
  // checkpoints and restores would, before any reported plan is made.
  const warmUp: OverheadNotebook = {
    name: 'warm-up',
    description: '',
    cells: Array.from({ length: 40 }, (_, i) => `w${i} = list(range(${i * 100}))`),
  };
  progress('warming up (not reported)');
  await migrate(service, runners, kernels, warmUp, bandwidth, () => undefined);

  const notebooks: NotebookMigration[] = [];
  for (const notebook of migrationNotebooks().filter((n) => only === undefined || only.includes(n.name))) {
    const plans = await migrate(service, runners, kernels, notebook, bandwidth, progress);
    notebooks.push({
      name: notebook.name,
      description: notebook.description,
      cells: notebook.cells.length,
      plans,
      ratios: {
        migration: ratios((label) => plans[label].migration_s),
        restore: ratios((label) => plans[label].restore_s),
      },
    });
  }

  const sum = (label: PlanLabel, of: 'migration_s' | 'restore_s') => round(notebooks.reduce((total, n) => total + n.plans[label][of], 0));
  const totals = (of: 'migration_s' | 'restore_s') =>
    Object.fromEntries(PLANS.map((p) => [p.label, sum(p.label, of)])) as Record<PlanLabel, number>;
  return {
    bandwidth: { write_mb_s: round(measured.writeBytesPerS / 1e6), read_mb_s: round(measured.readBytesPerS / 1e6) },
    notebooks,
    totals: {
      migration_s: totals('migration_s'),
      restore_s: totals('restore_s'),
      ratios: { migration: ratios((label) => sum(label, 'migration_s')), restore: ratios((label) => sum(label, 'restore_s')) },
    },
  };
}

/** Runs `notebook` in a new kernel, then checkpoints and restores it by every plan. */
async function migrate(
  service: BenchService,
  runners: ReadonlyMap<PlanLabel, CheckpointRunner>,
  kernels: { track: (kernel: BenchKernel) => void; untrack: (kernel: BenchKernel) => Promise<void> },
  notebook: OverheadNotebook,
  bandwidth: StoreBandwidth,
  progress: (message: string) => void,
): Promise<Record<PlanLabel, PlanMigration>> {
  progress(`${notebook.name}: running ${notebook.cells.length} cells`);
  const source = await BenchKernel.start(kernels.track);
  try {
    for (const cell of notebook.cells) await source.runCell(cell);
    const before = await source.agent.describe();
    const plans = {} as Record<PlanLabel, PlanMigration>;
    for (const { label } of PLANS) {
      progress(`${notebook.name}: ${label} checkpoint and restore`);
      const session = await service.store.upsertSession({
        user: 'bench',
        server: '',
        notebookPath: `bench/migration/${notebook.name}.${label}.ipynb`,
        kernelName: 'python3',
      });
      const run = await registerRun(service, session.id, source);
      const checkpointStarted = performance.now();
      const checkpoint = await runners.get(label)!.checkpoint({ session, run }, source.agent, 'cull');
      const checkpointS = secondsSince(checkpointStarted);

      const fresh = await BenchKernel.start(kernels.track);
      try {
        const freshRun = await registerRun(service, session.id, fresh);
        const restoreStarted = performance.now();
        const instruction = await service.restores.handOut(session, freshRun);
        if (instruction === null) {
          throw new ResumeError('RESUME_ERR_BENCH_NO_RESTORE', `The restore handout gave out nothing for ${notebook.name} (${label}).`);
        }
        const report: RestoreReport = await fresh.agent.restore(manifestSchema.parse(instruction.manifest), instruction.cells, instruction.source, {
          ...(instruction.plan === undefined ? {} : { plan: instruction.plan }),
        });
        const restoreS = secondsSince(restoreStarted);
        // What the service does with a restore report (agent-router): learn the read side.
        const timings = report.timings;
        if (timings?.blobs_loaded !== undefined) bandwidth.noteRead(timings.bytes_loaded, timings.load_s, timings.blobs_loaded);
        const compared = compareDescriptions(before, await fresh.agent.describe(), report);
        const problems = compared.filter((v) => v.status === 'differs' || v.status === 'missing').map((v) => `${v.name}: ${v.detail}`);
        const plan = checkpoint.plan as ReplicationPlan | null;
        const manifestTimings = manifestSchema.parse(checkpoint.manifest).timings;
        plans[label] = {
          checkpoint_s: round(checkpointS),
          restore_s: round(restoreS),
          migration_s: round(checkpointS + restoreS),
          bytes_stored: checkpoint.bytesStored,
          groups_stored: plan?.groups.filter((g) => g.decision === 'store').length ?? 0,
          groups_rebuilt: plan?.groups.filter((g) => g.decision === 'recompute').length ?? 0,
          cells_rerun: report.rerun?.length ?? 0,
          agent_checkpoint: { serialize_s: manifestTimings.serialize_s, upload_s: manifestTimings.upload_s },
          agent_restore: report.timings === undefined ? null : { load_s: report.timings.load_s, rerun_s: report.timings.rerun_s },
          predicted_restore_s: plan === null ? null : round(plan.predicted.restoreS),
          all_equal: problems.length === 0,
          problems,
        };
      } finally {
        await kernels.untrack(fresh);
      }
    }
    return plans;
  } finally {
    await kernels.untrack(source);
  }
}

function ratios(seconds: (label: PlanLabel) => number): Ratios {
  return {
    'optimal ÷ store-all': ratio(seconds('optimal'), seconds('store-all')),
    'optimal ÷ recompute-all': ratio(seconds('optimal'), seconds('recompute-all')),
    'optimal-alpha-1 ÷ store-all': ratio(seconds('optimal-alpha-1'), seconds('store-all')),
    'optimal-alpha-1 ÷ recompute-all': ratio(seconds('optimal-alpha-1'), seconds('recompute-all')),
  };
}

/** A run of `kernel` in the session, as the agent's registration would create it. */
async function registerRun(service: BenchService, sessionId: string, kernel: BenchKernel) {
  return service.store.createRun({
    sessionId,
    kernelId: kernel.kernelId,
    // No server exists; nothing calls this URL.
    serverUrl: 'http://127.0.0.1:9/user/bench/',
    agentVersion: (await kernel.agent.status()).agent_version,
    restoredFromCheckpointId: null,
  });
}

function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function ratio(a: number, b: number): number {
  return b === 0 ? 0 : Math.round((a / b) * 1000) / 1000;
}

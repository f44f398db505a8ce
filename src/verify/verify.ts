/**
 * `verify`: does a notebook's state survive a checkpoint and a restore into a fresh kernel?
 *
 * With no hub and no service: run the notebook's code cells in a new local kernel with the agent,
 * plan the checkpoint as the service would (`--plan`, default `optimal`, over the temp directory's
 * measured bandwidth), checkpoint there, optionally run a probe (`--after`), describe the kernel;
 * then restore into a second new kernel by the plan (stored groups loaded, the rest rebuilt from
 * the first kernel's history), run the same probe there, describe it, and compare variable by
 * variable.
 *
 * The two baselines are measured in the same run on the same state: the whole migration
 * (checkpoint + restore into a fresh kernel) of `store-all` (`dump_session_s`, ElasticNotebook's
 * DumpSession) and of `recompute-all` (`rerun_all_s`, its RerunAll). Every kernel and the temp
 * directory are always removed.
 *
 * The result's JSON shape is a contract (`toVerifyJson`): later acceptance tests read it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AgentClient } from '../agent/agent-client.js';
import { AGENT_SOURCE_DIR } from '../agent/agent-injection.js';
import type { Cell, Manifest, RestoreReport } from '../agent/agent-messages.js';
import { ResumeError, isResumeError } from '../errors.js';
import { toCellRecord } from '../history/cell-record.js';
import { HistoryGraph } from '../history/index.js';
import type { ExecuteResult } from '../jupyter/kernel-channel.js';
import { LocalKernel } from '../jupyter/local-kernel.js';
import { DEFAULT_ALPHA, DEFAULT_UNKNOWN_RUNTIME_S, type CostModel } from '../planner/cost-model.js';
import { planReplication, type PlanStrategy, type ReplicationPlan } from '../planner/replication-planner.js';
import { restorePlanFor } from '../planner/restore-plan.js';
import { compareDescriptions, type VariableComparison } from './compare-descriptions.js';
import { measureDirBandwidth } from './dir-bandwidth.js';
import { readNotebookCells } from './notebook-cells.js';

/** Options of `verifyNotebook`. */
export type VerifyOptions = {
  /** The notebook to run. */
  notebookPath: string;
  /** A Python file run in both kernels after the checkpoint/restore, before describing them. */
  afterPath?: string;
  /** Run every cell even if some raise (default: stop at the first error). */
  allowErrors?: boolean;
  /** What the checkpoint stores and what the restore rebuilds (default `optimal`). */
  plan?: PlanStrategy;
  /** Weight of checkpoint time against restore time in the optimal plan (default 0.05). */
  alpha?: number;
  /** Also time the store-all and recompute-all migrations (default true). */
  baselines?: boolean;
  /** Python with ipykernel (default: the project's venv). */
  python?: string;
  /** Deadline of each cell, the probe and each agent command; default 10 min. */
  timeoutMs?: number;
  /** Aborting stops the run; both kernels are still shut down. */
  signal?: AbortSignal;
  /** Told about each step, for progress output. */
  onProgress?: (message: string) => void;
};

/** Seconds, each measured in this run. */
export type VerifyTimings = {
  /** Running the notebook's cells. */
  run_s: number;
  /** The plan's checkpoint (planning included). */
  checkpoint_s: number;
  /** The plan's restore into a fresh kernel. */
  restore_s: number;
  /** Checkpoint + restore of the store-all plan; null when not measured (`--no-baselines`, or it cannot be made). */
  dump_session_s: number | null;
  /** Checkpoint + restore of the recompute-all plan (every cell re-run); null when not measured. */
  rerun_all_s: number | null;
};

/** The outcome of a verify run. */
export type VerifyReport = {
  notebook: string;
  /** True when no variable differs or is missing. */
  ok: boolean;
  plan: PlanStrategy;
  variables: VariableComparison[];
  timings: VerifyTimings;
  bytes_stored: number;
  /** What the plan decided, for people: groups stored and rebuilt, history cells the restore re-ran. */
  decisions: { stored: number; recomputed: number; rerun_cells: number[] };
  /** Problems worth telling a person that do not fail the run (e.g. the probe raised after restore). */
  warnings: string[];
};

/** The JSON object `verify --json` prints: exactly these fields (a stable contract). */
export type VerifyJson = {
  notebook: string;
  ok: boolean;
  plan: PlanStrategy;
  variables: Array<{ name: string; status: VariableComparison['status']; restored_by: VariableComparison['restored_by'] }>;
  timings: VerifyTimings;
  bytes_stored: number;
};

const DEFAULT_TIMEOUT_MS = 600_000;

/**
 * Runs, checkpoints, restores and compares one notebook.
 * @param options notebook, probe, flags.
 * @returns the comparison; `ok` is false when a variable differs or is missing.
 * Throws ResumeError for anything that stops the run (a cell raised, a kernel did not start, the
 * agent failed), after shutting both kernels down.
 */
export async function verifyNotebook(options: VerifyOptions): Promise<VerifyReport> {
  const progress = options.onProgress ?? (() => undefined);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const notebookPath = resolve(options.notebookPath);
  const cells = await readNotebookCells(notebookPath);
  const probe = options.afterPath === undefined ? undefined : await readProbe(options.afterPath);
  errorIfAborted(options.signal);

  const kernelOptions = {
    ...(options.python === undefined ? {} : { python: options.python }),
    // As in Jupyter: the kernel runs in the notebook's directory, so relative paths work.
    cwd: dirname(notebookPath),
    extraArgs: ['--ext=jupyterhub_resume_agent'],
    // No service: the agent records in memory only and never calls out.
    env: { JUPYTERHUB_RESUME_URL: undefined, PYTHONPATH: dirname(AGENT_SOURCE_DIR) },
  };
  const strategy = options.plan ?? 'optimal';
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const workDir = await mkdtemp(join(tmpdir(), 'jhr-verify-'));
  const kernels: Array<Promise<LocalKernel | null>> = [];
  const start = () => {
    const started = LocalKernel.start(kernelOptions);
    kernels.push(started.catch(() => null));
    return started;
  };
  // Closing the channels makes whatever is pending reject at once; `finally` then cleans up.
  const onAbort = () => {
    for (const k of kernels) void k.then((kernel) => kernel?.channel.dispose().catch(() => undefined)).catch(() => undefined);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    progress('starting a kernel');
    const original = await start();
    // The second kernel starts while the notebook runs; it stays empty until the restore.
    const fresh = start();
    fresh.catch(() => undefined);
    const originalAgent = new AgentClient(original.channel, { timeoutMs });

    const runStarted = performance.now();
    for (const [index, code] of cells.entries()) {
      errorIfAborted(options.signal);
      progress(`running cell ${index + 1} of ${cells.length}`);
      const result = await original.channel.execute(code, { timeoutMs });
      if (result.status !== 'ok' && !options.allowErrors) throw cellFailed(notebookPath, index, cells.length, result);
    }
    const runS = seconds(runStarted);

    errorIfAborted(options.signal);
    // Taken before the probe: the probe is not part of the notebook's history.
    const history = await originalAgent.history();
    const graph = HistoryGraph.fromCells(history.map(toCellRecord));
    progress('measuring the checkpoint directory');
    const model: CostModel = { ...(await measureDirBandwidth(workDir)), alpha, unknownRuntimeS: DEFAULT_UNKNOWN_RUNTIME_S };

    progress(`checkpointing (${strategy} plan)`);
    const checkpointStarted = performance.now();
    const plan = planReplication(graph, model, { strategy });
    const manifest = await checkpointByPlan(originalAgent, plan, join(workDir, strategy));
    const checkpointS = seconds(checkpointStarted);

    const warnings: string[] = [];
    // The baselines' checkpoints are taken now, of the same state (the probe below changes it).
    const baselines: BaselineCheckpoint[] = [];
    for (const baseline of options.baselines === false ? [] : BASELINES.filter((b) => b !== strategy)) {
      errorIfAborted(options.signal);
      progress(`checkpointing (${baseline} plan, for comparison)`);
      const started = performance.now();
      try {
        const baselinePlan = planReplication(graph, model, { strategy: baseline });
        const baselineManifest = await checkpointByPlan(originalAgent, baselinePlan, join(workDir, baseline));
        baselines.push({ strategy: baseline, manifest: baselineManifest, checkpointS: seconds(started) });
      } catch (error) {
        // A notebook can make a baseline impossible (a never-rerun cell rules out recompute-all).
        if (!isResumeError(error) || error.code !== 'RESUME_ERR_PLAN_IMPOSSIBLE') throw error;
        warnings.push(`the ${baseline} plan was not timed: ${error.message}`);
      }
    }

    if (probe !== undefined) {
      progress('running the probe in the original kernel');
      const result = await original.channel.execute(probe.code, { timeoutMs });
      if (result.status !== 'ok') {
        const why = describeFailure(result);
        if (!options.allowErrors) {
          throw new ResumeError('RESUME_ERR_VERIFY_PROBE_FAILED', `The --after file ${probe.path} raised in the original kernel: ${why}.`, {
            status: 400,
            hint: 'Fix the probe (it must run cleanly on the notebook\'s state), or pass --allow-errors.',
          });
        }
        warnings.push(`the probe raised in the original kernel: ${why}`);
      }
    }
    const before = await originalAgent.describe();

    errorIfAborted(options.signal);
    progress('restoring into a new kernel');
    const restoredKernel = await fresh;
    const restoredAgent = new AgentClient(restoredKernel.channel, { timeoutMs });
    const restoreStarted = performance.now();
    const report = await restoreByPlan(restoredAgent, graph, history, manifest, join(workDir, strategy));
    const restoreS = seconds(restoreStarted);
    if (probe !== undefined) {
      progress('running the probe in the restored kernel');
      const result = await restoredKernel.channel.execute(probe.code, { timeoutMs });
      // Not fatal: what the probe failed to compute shows up as missing or differing variables.
      if (result.status !== 'ok') warnings.push(`the probe raised in the restored kernel: ${describeFailure(result)}`);
    }
    const after = await restoredAgent.describe();
    const variables = compareDescriptions(before, after, report);
    warnings.push(...rerunErrors(report, strategy));

    const migrationS: Partial<Record<PlanStrategy, number>> = { [strategy]: round(checkpointS + restoreS) };
    for (const baseline of baselines) {
      errorIfAborted(options.signal);
      progress(`restoring the ${baseline.strategy} checkpoint into a new kernel, for comparison`);
      const kernel = await start();
      const started = performance.now();
      const baselineReport = await restoreByPlan(
        new AgentClient(kernel.channel, { timeoutMs }),
        graph,
        history,
        baseline.manifest,
        join(workDir, baseline.strategy),
      );
      migrationS[baseline.strategy] = round(baseline.checkpointS + seconds(started));
      warnings.push(...rerunErrors(baselineReport, baseline.strategy));
      // Only one copy of the session at a time besides the original: a big one may not fit twice.
      await kernel.shutdown();
    }

    const rerunCells = (report.rerun ?? []).map((cell) => cell.index);
    return {
      notebook: options.notebookPath,
      ok: variables.every((v) => v.status === 'equal' || v.status === 'uncomparable'),
      plan: strategy,
      variables,
      timings: {
        run_s: runS,
        checkpoint_s: checkpointS,
        restore_s: restoreS,
        dump_session_s: migrationS['store-all'] ?? null,
        rerun_all_s: migrationS['recompute-all'] ?? null,
      },
      bytes_stored: manifest.groups.reduce((sum, g) => sum + g.bytes, 0),
      decisions: {
        stored: plan.groups.filter((g) => g.decision === 'store').length,
        recomputed: plan.groups.filter((g) => g.decision === 'recompute').length,
        rerun_cells: rerunCells,
      },
      warnings,
    };
  } catch (error) {
    if (options.signal?.aborted) throw interrupted(error);
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    progress('shutting the kernels down');
    await Promise.all(kernels.map((k) => k.then((kernel) => kernel?.shutdown())));
    await rm(workDir, { recursive: true, force: true });
  }
}

/** The plans every run is compared with. */
const BASELINES = ['store-all', 'recompute-all'] as const satisfies readonly PlanStrategy[];

type BaselineCheckpoint = { strategy: PlanStrategy; manifest: Manifest; checkpointS: number };

/** Checkpoints into `dir`, rebuilding at restore what `plan` recomputes. */
async function checkpointByPlan(agent: AgentClient, plan: ReplicationPlan, dir: string): Promise<Manifest> {
  const recompute = plan.groups.filter((g) => g.decision === 'recompute').flatMap((g) => g.names);
  return agent.checkpoint(randomUUID(), { kind: 'dir', path: dir }, { recompute });
}

/** Restores as the service hands a restore out: by the plan worked out from what the checkpoint holds. */
function restoreByPlan(agent: AgentClient, graph: HistoryGraph, history: Cell[], manifest: Manifest, dir: string): Promise<RestoreReport> {
  return agent.restore(manifest, history, { kind: 'dir', path: dir }, { plan: restorePlanFor(graph, manifest) });
}

/** A re-run cell that raised does not fail verify by itself (the comparison says what it cost), but a person should know. */
function rerunErrors(report: RestoreReport, strategy: PlanStrategy): string[] {
  return (report.rerun ?? [])
    .filter((cell) => cell.error !== null)
    .map((cell) => `the ${strategy} restore re-ran history cell ${cell.index} and it raised ${cell.error}`);
}

/**
 * The contract JSON of a report: exactly `notebook`, `ok`, `plan`, `variables` (`name`,
 * `status`, `restored_by`), `timings` and `bytes_stored`.
 */
export function toVerifyJson(report: VerifyReport): VerifyJson {
  return {
    notebook: report.notebook,
    ok: report.ok,
    plan: report.plan,
    variables: report.variables.map((v) => ({ name: v.name, status: v.status, restored_by: v.restored_by })),
    timings: report.timings,
    bytes_stored: report.bytes_stored,
  };
}

async function readProbe(path: string): Promise<{ path: string; code: string }> {
  try {
    return { path, code: await readFile(path, 'utf8') };
  } catch (cause) {
    throw new ResumeError('RESUME_ERR_VERIFY_PROBE_INVALID', `Cannot read the --after file ${path}.`, {
      status: 400,
      hint: 'Pass a Python file with the code to run after the restore, e.g. `g_next = next(gen)`.',
      cause,
    });
  }
}

function cellFailed(notebook: string, index: number, total: number, result: ExecuteResult): ResumeError {
  return new ResumeError(
    'RESUME_ERR_VERIFY_CELL_FAILED',
    `Code cell ${index + 1} of ${total} in ${basename(notebook)} raised ${describeFailure(result)}.`,
    {
      status: 400,
      hint: 'verify checks a notebook that runs top to bottom; fix the cell, or pass --allow-errors to keep going.',
    },
  );
}

function describeFailure(result: ExecuteResult): string {
  return result.error ? `${result.error.ename}: ${result.error.evalue}` : `(${result.status})`;
}

function errorIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw interrupted(undefined);
}

function interrupted(cause: unknown): ResumeError {
  return new ResumeError('RESUME_ERR_VERIFY_INTERRUPTED', 'verify was interrupted; both kernels were shut down.', {
    status: 499,
    hint: 'Run it again and let it finish.',
    cause,
  });
}

function seconds(since: number): number {
  return round((performance.now() - since) / 1000);
}

/** Milliseconds are all a person reading these timings can use. */
function round(s: number): number {
  return Number(s.toFixed(3));
}

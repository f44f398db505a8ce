/**
 * `verify`: does a notebook's state survive a checkpoint and a restore into a fresh kernel?
 *
 * With no hub and no service: run the notebook's code cells in a new local kernel with the agent,
 * checkpoint everything to a temp directory, optionally run a probe (`--after`), describe the
 * kernel; then restore into a second new kernel (stored groups + the first kernel's history for
 * what must be recomputed), run the same probe there, describe it, and compare variable by
 * variable. Both kernels and the temp directory are always removed.
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
import { ResumeError } from '../errors.js';
import type { ExecuteResult } from '../jupyter/kernel-channel.js';
import { LocalKernel } from '../jupyter/local-kernel.js';
import { compareDescriptions, type VariableComparison } from './compare-descriptions.js';
import { readNotebookCells } from './notebook-cells.js';

/** Options of `verifyNotebook`. */
export type VerifyOptions = {
  /** The notebook to run. */
  notebookPath: string;
  /** A Python file run in both kernels after the checkpoint/restore, before describing them. */
  afterPath?: string;
  /** Run every cell even if some raise (default: stop at the first error). */
  allowErrors?: boolean;
  /** Python with ipykernel (default: the project's venv). */
  python?: string;
  /** Deadline of each cell, the probe and each agent command; default 10 min. */
  timeoutMs?: number;
  /** Aborting stops the run; both kernels are still shut down. */
  signal?: AbortSignal;
  /** Told about each step, for progress output. */
  onProgress?: (message: string) => void;
};

/** The outcome of a verify run. */
export type VerifyReport = {
  notebook: string;
  /** True when no variable differs or is missing. */
  ok: boolean;
  plan: 'store-all';
  variables: VariableComparison[];
  timings: { run_s: number; checkpoint_s: number; restore_s: number };
  bytes_stored: number;
  /** Problems worth telling a person that do not fail the run (e.g. the probe raised after restore). */
  warnings: string[];
};

/** The JSON object `verify --json` prints: exactly these fields (a stable contract). */
export type VerifyJson = {
  notebook: string;
  ok: boolean;
  plan: 'store-all';
  variables: Array<{ name: string; status: VariableComparison['status']; restored_by: VariableComparison['restored_by'] }>;
  timings: { run_s: number; checkpoint_s: number; restore_s: number };
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
  const blobDir = await mkdtemp(join(tmpdir(), 'jhr-verify-'));
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
    progress('checkpointing');
    const checkpointStarted = performance.now();
    const manifest = await originalAgent.checkpoint(randomUUID(), { kind: 'dir', path: blobDir });
    const checkpointS = seconds(checkpointStarted);
    // Taken before the probe: the probe is not part of the notebook's history.
    const history = await originalAgent.history();

    const warnings: string[] = [];
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
    const report = await restoredAgent.restore(manifest, history, { kind: 'dir', path: blobDir });
    const restoreS = seconds(restoreStarted);
    if (probe !== undefined) {
      progress('running the probe in the restored kernel');
      const result = await restoredKernel.channel.execute(probe.code, { timeoutMs });
      // Not fatal: what the probe failed to compute shows up as missing or differing variables.
      if (result.status !== 'ok') warnings.push(`the probe raised in the restored kernel: ${describeFailure(result)}`);
    }
    const after = await restoredAgent.describe();

    const variables = compareDescriptions(before, after, report);
    return {
      notebook: options.notebookPath,
      ok: variables.every((v) => v.status === 'equal' || v.status === 'uncomparable'),
      plan: 'store-all',
      variables,
      timings: { run_s: runS, checkpoint_s: checkpointS, restore_s: restoreS },
      bytes_stored: manifest.groups.reduce((sum, g) => sum + g.bytes, 0),
      warnings,
    };
  } catch (error) {
    if (options.signal?.aborted) throw interrupted(error);
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    progress('shutting the kernels down');
    await Promise.all(kernels.map((k) => k.then((kernel) => kernel?.shutdown())));
    await rm(blobDir, { recursive: true, force: true });
  }
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
  return Number(((performance.now() - since) / 1000).toFixed(3));
}

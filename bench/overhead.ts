/**
 * `npx tsx bench/overhead.ts`: the agent's monitoring overhead, measured side by side in one run.
 *
 * For each notebook of `overhead-notebooks.ts`, two fresh kernels run the same cells one by one:
 * one WITH the agent (`--ext=jupyterhub_resume_agent`, exactly as the hub starts it) and one
 * WITHOUT it (plain ipykernel). Cells are interleaved, cell i in both kernels before cell i + 1,
 * and which kernel goes first alternates from cell to cell, so machine noise hits both alike.
 * Only one kernel runs at a time (2 cores: concurrent kernels would measure each other).
 *
 * Per cell: the wall time of the execute request (request sent → reply and `idle`) in each
 * kernel, and in the agent kernel the agent's own `recorder.last_hook_s` (seconds in its
 * pre/post_run_cell hooks) read afterwards with a silent request (silent requests fire no IPython
 * events, so they are not recorded and not timed). Per notebook: peak RSS (VmHWM) of both kernel
 * processes. Results go to bench/results/overhead.json (BENCH_RESULT overrides); a short summary
 * is printed. Exit code 0 when every notebook ran (targets may still be missed: they are
 * reported), 1 when the bench failed (the JSON is still written, with `error`).
 */
import { readFile } from 'node:fs/promises';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { BenchKernel, type AgentCell } from './bench-kernel.js';
import { machineFacts, type MachineFacts } from './machine-facts.js';
import { overheadNotebooks, type OverheadNotebook } from './overhead-notebooks.js';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_RESULT = join(PROJECT_ROOT, 'bench', 'results', 'overhead.json');

/** The issue's targets. */
const TARGETS = { runtimeRatio: 0.01, medianCellMs: 1, memoryRatio: 0.05 } as const;

/** One cell in both kernels. */
type CellRun = {
  index: number;
  code: string;
  /** Wall ms of the execute request in the kernel with the agent / without it. */
  with_ms: number;
  without_ms: number;
  overhead_ms: number;
  /** Which kernel ran the cell first. */
  first: 'with' | 'without';
  /** The agent's own numbers: ms in its hooks, the cell's duration between the hooks, and its dependency fields. */
  agent_hook_ms: number | null;
  agent_cell_ms: number | null;
  agent_read: number | null;
  agent_modified: number | null;
  agent_read_all: boolean | null;
};

/** Memory of one kernel process (bytes, from /proc/<pid>/status). */
type Memory = { vm_hwm: number; vm_rss: number; rss_after_start: number };

type Stats = { median: number; p99: number; mean: number; min: number; max: number };

type NotebookSummary = {
  cells: number;
  with_total_s: number;
  without_total_s: number;
  runtime_overhead_ratio: number;
  per_cell_overhead_ms: Stats;
  agent_hook_ms: Stats;
  /** Sum of the agent's hook time over the plain kernel's total: the overhead the agent measures itself. */
  agent_hook_total_s: number;
  agent_hook_ratio: number;
  /** Sum with − sum without, and the part of it not spent inside the agent's hooks (messaging, GC, noise, the record callback). */
  overhead_total_s: number;
  overhead_outside_hooks_s: number;
  memory: {
    with: Memory;
    without: Memory;
    /** (VmHWM with − VmHWM without) / VmHWM without. */
    peak_rss_overhead_ratio: number;
    peak_rss_overhead_bytes: number;
  };
};

type NotebookResult = { name: string; description: string; summary: NotebookSummary; cells: CellRun[] };

type TargetCheck = { target: string; limit: number; value: number; met: boolean };

function progress(message: string): void {
  process.stderr.write(`[overhead] ${message}\n`);
}

function secondsSince(t0: number): number {
  return (performance.now() - t0) / 1000;
}

function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Nearest-rank quantile of a sorted sample. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? 0;
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n === 0 ? 0 : n % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return {
    median: round(median, 3),
    p99: round(quantile(sorted, 0.99), 3),
    mean: round(n === 0 ? 0 : sorted.reduce((s, x) => s + x, 0) / n, 3),
    min: round(sorted[0] ?? 0, 3),
    max: round(sorted[n - 1] ?? 0, 3),
  };
}

/** VmHWM and VmRSS of a process, in bytes. */
async function procMemory(pid: number): Promise<{ vm_hwm: number; vm_rss: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { vm_hwm: kb('VmHWM'), vm_rss: kb('VmRSS') };
}

async function timedCell(kernel: BenchKernel, code: string): Promise<number> {
  const t0 = performance.now();
  await kernel.runCell(code);
  return performance.now() - t0;
}

/** Runs one notebook in a fresh pair of kernels, interleaved cell by cell. */
async function runNotebook(
  notebook: OverheadNotebook,
  start: (agent: boolean) => Promise<BenchKernel>,
  stop: (kernel: BenchKernel) => Promise<void>,
): Promise<NotebookResult> {
  const [withAgent, without] = await Promise.all([start(true), start(false)]);
  try {
    const startWith = await procMemory(withAgent.pid);
    const startWithout = await procMemory(without.pid);
    const cells: CellRun[] = [];
    for (const [index, code] of notebook.cells.entries()) {
      const first = index % 2 === 0 ? 'with' : 'without';
      let withMs: number;
      let withoutMs: number;
      if (first === 'with') {
        withMs = await timedCell(withAgent, code);
        withoutMs = await timedCell(without, code);
      } else {
        withoutMs = await timedCell(without, code);
        withMs = await timedCell(withAgent, code);
      }
      // Outside the clocks; the plain kernel gets the same silent request, so both see the same traffic.
      const agent: AgentCell = await withAgent.agentCell();
      await without.agentCell();
      cells.push({
        index,
        code: code.length > 160 ? `${code.slice(0, 157)}...` : code,
        with_ms: round(withMs, 3),
        without_ms: round(withoutMs, 3),
        overhead_ms: round(withMs - withoutMs, 3),
        first,
        agent_hook_ms: agent ? round(agent.hook_s * 1000, 3) : null,
        agent_cell_ms: agent?.cell_s != null ? round(agent.cell_s * 1000, 3) : null,
        agent_read: agent?.read ?? null,
        agent_modified: agent?.modified ?? null,
        agent_read_all: agent?.read_all ?? null,
      });
    }
    const memWith = await procMemory(withAgent.pid);
    const memWithout = await procMemory(without.pid);
    const withTotal = cells.reduce((s, c) => s + c.with_ms, 0) / 1000;
    const withoutTotal = cells.reduce((s, c) => s + c.without_ms, 0) / 1000;
    const hookTotal = cells.reduce((s, c) => s + (c.agent_hook_ms ?? 0), 0) / 1000;
    const summary: NotebookSummary = {
      cells: cells.length,
      with_total_s: round(withTotal),
      without_total_s: round(withoutTotal),
      runtime_overhead_ratio: round((withTotal - withoutTotal) / withoutTotal, 5),
      per_cell_overhead_ms: stats(cells.map((c) => c.overhead_ms)),
      agent_hook_ms: stats(cells.map((c) => c.agent_hook_ms ?? 0)),
      agent_hook_total_s: round(hookTotal),
      agent_hook_ratio: round(hookTotal / withoutTotal, 5),
      overhead_total_s: round(withTotal - withoutTotal),
      overhead_outside_hooks_s: round(withTotal - withoutTotal - hookTotal),
      memory: {
        with: { ...memWith, rss_after_start: startWith.vm_rss },
        without: { ...memWithout, rss_after_start: startWithout.vm_rss },
        peak_rss_overhead_ratio: round((memWith.vm_hwm - memWithout.vm_hwm) / memWithout.vm_hwm, 5),
        peak_rss_overhead_bytes: memWith.vm_hwm - memWithout.vm_hwm,
      },
    };
    return { name: notebook.name, description: notebook.description, summary, cells };
  } finally {
    await Promise.all([stop(withAgent), stop(without)]);
  }
}

function totals(results: NotebookResult[]) {
  const cells = results.flatMap((r) => r.cells);
  const withTotal = cells.reduce((s, c) => s + c.with_ms, 0) / 1000;
  const withoutTotal = cells.reduce((s, c) => s + c.without_ms, 0) / 1000;
  const hookTotal = cells.reduce((s, c) => s + (c.agent_hook_ms ?? 0), 0) / 1000;
  const hwmWith = results.reduce((s, r) => s + r.summary.memory.with.vm_hwm, 0);
  const hwmWithout = results.reduce((s, r) => s + r.summary.memory.without.vm_hwm, 0);
  return {
    notebooks: results.map((r) => r.name),
    cells: cells.length,
    with_total_s: round(withTotal),
    without_total_s: round(withoutTotal),
    runtime_overhead_ratio: withoutTotal > 0 ? round((withTotal - withoutTotal) / withoutTotal, 5) : 0,
    per_cell_overhead_ms: stats(cells.map((c) => c.overhead_ms)),
    agent_hook_ms: stats(cells.map((c) => c.agent_hook_ms ?? 0)),
    agent_hook_total_s: round(hookTotal),
    agent_hook_ratio: withoutTotal > 0 ? round(hookTotal / withoutTotal, 5) : 0,
    overhead_total_s: round(withTotal - withoutTotal),
    overhead_outside_hooks_s: round(withTotal - withoutTotal - hookTotal),
    memory: {
      sum_vm_hwm_with: hwmWith,
      sum_vm_hwm_without: hwmWithout,
      peak_rss_overhead_ratio: hwmWithout > 0 ? round((hwmWith - hwmWithout) / hwmWithout, 5) : 0,
      worst_notebook_ratio: Math.max(...results.map((r) => r.summary.memory.peak_rss_overhead_ratio), 0),
    },
  };
}

type Totals = ReturnType<typeof totals>;

function checkTargets(total: Totals, results: NotebookResult[]) {
  const overall: TargetCheck[] = [
    { target: 'total runtime overhead ratio (sum with − sum without) / sum without', limit: TARGETS.runtimeRatio, value: total.runtime_overhead_ratio, met: total.runtime_overhead_ratio <= TARGETS.runtimeRatio },
    { target: 'median per-cell overhead (ms)', limit: TARGETS.medianCellMs, value: total.per_cell_overhead_ms.median, met: total.per_cell_overhead_ms.median <= TARGETS.medianCellMs },
    { target: 'memory overhead ratio (peak RSS, sum over notebooks)', limit: TARGETS.memoryRatio, value: total.memory.peak_rss_overhead_ratio, met: total.memory.peak_rss_overhead_ratio <= TARGETS.memoryRatio },
  ];
  const perNotebook = results.map((r) => ({
    notebook: r.name,
    runtime: { value: r.summary.runtime_overhead_ratio, met: r.summary.runtime_overhead_ratio <= TARGETS.runtimeRatio },
    median_cell_ms: { value: r.summary.per_cell_overhead_ms.median, met: r.summary.per_cell_overhead_ms.median <= TARGETS.medianCellMs },
    memory: { value: r.summary.memory.peak_rss_overhead_ratio, met: r.summary.memory.peak_rss_overhead_ratio <= TARGETS.memoryRatio },
  }));
  return {
    limits: { runtime_overhead_ratio_max: TARGETS.runtimeRatio, median_cell_overhead_ms_max: TARGETS.medianCellMs, memory_overhead_ratio_max: TARGETS.memoryRatio },
    overall,
    all_met: overall.every((t) => t.met),
    per_notebook: perNotebook,
    all_met_per_notebook: perNotebook.every((n) => n.runtime.met && n.median_cell_ms.met && n.memory.met),
  };
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

function summaryText(results: NotebookResult[], total: Totals, targets: ReturnType<typeof checkTargets>, path: string, error: string | null): string {
  const lines = ['agent monitoring overhead (with vs without the agent, interleaved)'];
  const row = (name: string, s: { with_total_s: number; without_total_s: number; runtime_overhead_ratio: number; per_cell_overhead_ms: Stats; agent_hook_ms: Stats }, mem: number) =>
    `  ${name.padEnd(19)} with ${s.with_total_s.toFixed(2).padStart(7)} s  without ${s.without_total_s.toFixed(2).padStart(7)} s  runtime ${pct(s.runtime_overhead_ratio).padStart(8)}  ` +
    `cell median ${s.per_cell_overhead_ms.median.toFixed(2)} ms p99 ${s.per_cell_overhead_ms.p99.toFixed(2)} ms  hooks median ${s.agent_hook_ms.median.toFixed(2)} ms p99 ${s.agent_hook_ms.p99.toFixed(2)} ms  peak RSS ${pct(mem)}`;
  for (const r of results) lines.push(row(r.name, r.summary, r.summary.memory.peak_rss_overhead_ratio));
  lines.push(row('total', total, total.memory.peak_rss_overhead_ratio));
  for (const t of targets.overall) lines.push(`  target ${t.target} ≤ ${t.limit}: ${t.value} → ${t.met ? 'MET' : 'MISSED'}`);
  if (error) lines.push(`  FAILED: ${error}`);
  lines.push(`  written to ${path}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const startedAt = performance.now();
  const resultPath = process.env['BENCH_RESULT'] || DEFAULT_RESULT;
  const only = process.env['BENCH_NOTEBOOKS']?.split(',').filter(Boolean);
  const kernels = new Set<BenchKernel>();
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= Promise.all([...kernels].map((k) => k.shutdown())).then(() => kernels.clear());
    return cleaning;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping kernels`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: NotebookResult[] = [];
  let machine: MachineFacts | null = null;
  let error: string | null = null;
  try {
    const start = (agent: boolean) => BenchKernel.start((k) => void kernels.add(k), { agent });
    const stop = async (k: BenchKernel) => {
      await k.shutdown();
      kernels.delete(k);
    };
    for (const notebook of overheadNotebooks()) {
      if (only && !only.includes(notebook.name)) continue;
      progress(`${notebook.name}: ${notebook.cells.length} cells in a kernel with the agent and one without`);
      const t0 = performance.now();
      const result = await runNotebook(notebook, start, stop);
      results.push(result);
      const s = result.summary;
      progress(
        `${notebook.name}: ${secondsSince(t0).toFixed(1)} s; runtime ${pct(s.runtime_overhead_ratio)}, cell median ${s.per_cell_overhead_ms.median} ms, hooks median ${s.agent_hook_ms.median} ms, peak RSS ${pct(s.memory.peak_rss_overhead_ratio)}`,
      );
    }
    const probe = await start(false);
    try {
      machine = machineFacts(await probe.versions(), {});
    } finally {
      await stop(probe);
    }
  } catch (e: unknown) {
    const err = e as { code?: string; message?: string; hint?: string };
    error = `${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}`;
    progress(`failed: ${error}`);
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const total = totals(results);
  const targets = checkTargets(total, results);
  const result = {
    benchmark: 'overhead',
    generated_at: new Date().toISOString(),
    duration_s: round(secondsSince(startedAt), 2),
    error,
    machine,
    method: [
      'Per notebook, two fresh local ipykernels from the project .venv: one started with --ext=jupyterhub_resume_agent (no service URL: records in memory), one plain (no --ext). Both get the bench helper module (numpy, pandas, dill imported) before any cell, so their baselines match.',
      'Cells run one at a time, interleaved: cell i in both kernels before cell i + 1; the kernel that goes first alternates per cell. Never both kernels at once (2 cores).',
      'with_ms / without_ms: wall time of one execute_request as this Node process sees it (request sent to reply and idle status received), through ZmqKernelChannel.',
      'agent_hook_ms: the agent\'s Recorder.last_hook_s (pre_run_cell + post_run_cell, including dependency fields and fingerprints) read after each cell with a silent request (silent requests fire no IPython events: neither recorded nor timed); the plain kernel gets the same silent request.',
      'Per-cell overhead = with_ms − without_ms of the same cell; median and nearest-rank p99. Runtime overhead ratio = (sum with − sum without) / sum without.',
      'Memory: VmHWM (peak RSS) of each kernel process from /proc/<pid>/status after the notebook\'s last cell; ratio = (with − without) / without. Totals sum the per-notebook peaks. rss_after_start: VmRSS before the first cell.',
      'One pass per notebook: per-cell differences include scheduling noise (a few ms either way on small cells); agent_hook_ms is the agent\'s own, noise-free share.',
    ],
    targets,
    total,
    notebooks: results,
  };
  await mkdir(dirname(resultPath), { recursive: true });
  await writeFile(resultPath, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${summaryText(results, total, targets, relative(process.cwd(), resultPath) || resultPath, error)}\n`);
  return error === null ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`overhead bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);

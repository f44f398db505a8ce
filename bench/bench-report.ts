/**
 * The benchmark's result: what each round measured, the medians and throughputs derived from
 * them, the two targets of the issue, and the short summary printed for people.
 *
 * Units: seconds, bytes, and MB/s with MB = 10^6 bytes.
 */
import type { MachineFacts } from './machine-facts.js';
import type { CpuUse } from './process-cpu.js';
import type { StoreDiagnostics } from './store-diagnostics.js';

/** Several runs of one measurement and their median. */
export type Sample = { median: number; min: number; max: number; runs: number[] };

/** How one restore was checked against the original kernel. */
export type Verification = { verified: boolean; problems: string[] };

/** A checkpoint and a restore through one target (`http` via the service, or `dir`). */
export type RoundTripRun = {
  /** Wall time of the checkpoint as the service sees it (service path: the whole CheckpointRunner). */
  checkpoint_s: number;
  /** Wall time of the restore into a fresh kernel (service path: handout + restore command). */
  restore_s: number;
  /** The agent's own split of the checkpoint (manifest `timings`). */
  agent_serialize_s: number;
  agent_write_s: number;
  /** The agent's own restore time (RestoreReport `duration_s`). */
  agent_restore_s: number;
  bytes_stored: number;
  /** CPU seconds per process during the checkpoint and the restore (service path only). */
  cpu?: { checkpoint: CpuUse; restore: CpuUse };
} & Verification;

/** The baselines, each timed inside the kernel (no messaging overhead: the strictest comparison). */
export type BaselineRun = {
  pickle_dumps_s: number;
  pickle_write_s: number;
  pickle_total_s: number;
  pickle_bytes: number;
  dill_dump_s: number;
  dill_load_s: number;
  dill_bytes: number;
  dill_protocol: number;
  dill_load: Verification;
};

/** Everything one round measured. */
export type RoundRun = { round: number; seconds: number; service: RoundTripRun; dir: RoundTripRun; baselines: BaselineRun };

/** One notebook variable and its size. */
export type NotebookVariable = { name: string; type: string; how: string; bytes_in_memory: number; bytes_stored: number | null };

/** A target of the issue for one path. */
export type TargetCheck = { value: number; ratio: number; met: boolean };

/** The JSON written to bench/results/roundtrip.json. */
export type RoundtripResult = {
  benchmark: 'roundtrip';
  generated_at: string;
  duration_s: number;
  machine: MachineFacts;
  notebook: {
    description: string;
    scale: number;
    cells: string[];
    variables: NotebookVariable[];
    bytes_in_memory: number;
    bytes_stored: number;
  };
  method: string[];
  rounds: number;
  service: PathSummary;
  dir: PathSummary;
  baselines: {
    pickle_dumps_write: { total_s: Sample; dumps_s: Sample; write_s: Sample; bytes: number; mb_s: number };
    dill: { dump_s: Sample; load_s: Sample; bytes: number; protocol: number; dump_mb_s: number; load_mb_s: number };
  };
  targets: {
    checkpoint_throughput: {
      rule: string;
      baseline_mb_s: number;
      required_mb_s: number;
      /** value: checkpoint MB/s; ratio: that over the baseline's MB/s. */
      service: TargetCheck;
      dir: TargetCheck;
    };
    restore_vs_dill_load: {
      rule: string;
      dill_load_s: number;
      /** value: restore seconds; ratio: dill load seconds over restore seconds (> 1 is faster). */
      service: TargetCheck;
      dir: TargetCheck;
    };
  };
  correctness: { all_verified: boolean; checks: Array<{ round: number; what: string } & Verification> };
  diagnostics: StoreDiagnostics & { hub_calls: number; budget_s: number; max_rounds: number };
  runs: RoundRun[];
};

/** Medians and throughputs of one path. */
export type PathSummary = {
  checkpoint_s: Sample;
  restore_s: Sample;
  agent_serialize_s: Sample;
  agent_write_s: Sample;
  agent_restore_s: Sample;
  bytes_stored: number;
  checkpoint_mb_s: number;
  restore_mb_s: number;
  /** Median CPU seconds per process (service path only): who the wall time waits on. */
  cpu_s?: { checkpoint: CpuMedians; restore: CpuMedians };
};

/** Median CPU seconds of each process group over the rounds. */
export type CpuMedians = { service_node: number; kernel: number; postgres: number };

/** @returns the runs with their median (mean of the middle two for an even count), min and max. */
export function sample(runs: number[]): Sample {
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median: round(median), min: round(sorted[0] as number), max: round(sorted.at(-1) as number), runs: runs.map((r) => round(r)) };
}

/** Throughput in MB/s (10^6 bytes). */
export function mbPerS(bytes: number, seconds: number): number {
  return round(bytes / 1e6 / seconds, 1);
}

/** Summarises one path's runs. */
export function summarizePath(runs: RoundTripRun[]): PathSummary {
  const bytes = runs[0]?.bytes_stored ?? 0;
  const checkpoint = sample(runs.map((r) => r.checkpoint_s));
  const restore = sample(runs.map((r) => r.restore_s));
  return {
    checkpoint_s: checkpoint,
    restore_s: restore,
    agent_serialize_s: sample(runs.map((r) => r.agent_serialize_s)),
    agent_write_s: sample(runs.map((r) => r.agent_write_s)),
    agent_restore_s: sample(runs.map((r) => r.agent_restore_s)),
    bytes_stored: bytes,
    checkpoint_mb_s: mbPerS(bytes, checkpoint.median),
    restore_mb_s: mbPerS(bytes, restore.median),
    ...(runs.every((r) => r.cpu !== undefined) && runs.length > 0
      ? { cpu_s: { checkpoint: cpuMedians(runs.map((r) => r.cpu!.checkpoint)), restore: cpuMedians(runs.map((r) => r.cpu!.restore)) } }
      : {}),
  };
}

function cpuMedians(uses: CpuUse[]): CpuMedians {
  return {
    service_node: sample(uses.map((u) => u.service_node_s)).median,
    kernel: sample(uses.map((u) => u.kernels_s)).median,
    postgres: sample(uses.map((u) => u.postgres_s)).median,
  };
}

/**
 * The issue's two targets, for both paths. A path whose restores were not all verified misses
 * both, whatever its speed: fast but wrong does not count.
 */
export function checkTargets(
  service: PathSummary,
  dir: PathSummary,
  baselines: RoundtripResult['baselines'],
  verified: { service: boolean; dir: boolean },
): RoundtripResult['targets'] {
  const baselineMbS = baselines.pickle_dumps_write.mb_s;
  const dillLoadS = baselines.dill.load_s.median;
  const throughput = (path: PathSummary, ok: boolean): TargetCheck => ({
    value: path.checkpoint_mb_s,
    ratio: round(path.checkpoint_mb_s / baselineMbS, 3),
    met: ok && path.checkpoint_mb_s >= 0.5 * baselineMbS,
  });
  const restore = (path: PathSummary, ok: boolean): TargetCheck => ({
    value: path.restore_s.median,
    ratio: round(dillLoadS / path.restore_s.median, 3),
    met: ok && path.restore_s.median < dillLoadS,
  });
  return {
    checkpoint_throughput: {
      rule: 'checkpoint throughput (bytes stored / median checkpoint seconds) >= 0.5 x (pickle.dumps(protocol=5) + write) throughput of the same variables, and every restore verified',
      baseline_mb_s: baselineMbS,
      required_mb_s: round(0.5 * baselineMbS, 1),
      service: throughput(service, verified.service),
      dir: throughput(dir, verified.dir),
    },
    restore_vs_dill_load: {
      rule: 'median restore seconds < median dill.load_module seconds (the dill_session baseline), and every restore verified',
      dill_load_s: dillLoadS,
      service: restore(service, verified.service),
      dir: restore(dir, verified.dir),
    },
  };
}

/** The few lines printed to stdout at the end. */
export function summaryText(result: RoundtripResult, resultPath: string): string {
  const m = result.machine;
  const s = result.service;
  const d = result.dir;
  const p = result.baselines.pickle_dumps_write;
  const dill = result.baselines.dill;
  const t = result.targets;
  const store = result.diagnostics.store_alone;
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
  const row = (label: string, x: Sample, mbS: number | null) =>
    `  ${label.padEnd(36)}${fmt(x.median).padStart(7)} s  [${fmt(x.min)}–${fmt(x.max)}]${mbS === null ? '' : `  ${String(Math.round(mbS)).padStart(5)} MB/s`}`;
  const mark = (met: boolean) => (met ? 'met' : 'MISSED');
  const checks = result.correctness.checks;
  const failed = checks.filter((c) => !c.verified);
  return [
    `jupyterhub-resume round trip: ${gb(result.notebook.bytes_in_memory)} notebook (${result.notebook.description}), ` +
      `${gb(s.bytes_stored)} stored; median of ${result.rounds} round(s) [min–max]`,
    `machine: ${m.cpu_model}, ${m.cores} cores, ${gb(m.memory_bytes)} RAM; node ${m.node}, python ${m.python}, ` +
      `Postgres ${m.postgres['server_version'] ?? '?'}`,
    row('service checkpoint (HTTP→Postgres)', s.checkpoint_s, s.checkpoint_mb_s),
    row('service restore (Postgres→HTTP)', s.restore_s, s.restore_mb_s),
    row('dir checkpoint (agent → local file)', d.checkpoint_s, d.checkpoint_mb_s),
    row('dir restore', d.restore_s, d.restore_mb_s),
    row('pickle.dumps + write (baseline)', p.total_s, p.mb_s),
    row('dill.dump_module', dill.dump_s, dill.dump_mb_s),
    row('dill.load_module (baseline)', dill.load_s, dill.load_mb_s),
    ...(s.cpu_s === undefined
      ? []
      : [
          `  service path CPU seconds, node / kernel / postgres: checkpoint ${cpuText(s.cpu_s.checkpoint)}, ` +
            `restore ${cpuText(s.cpu_s.restore)}`,
        ]),
    `  PgBlobStore alone (no agent, no HTTP; ${gb(store.bytes)}): write ${Math.round(store.write_mb_s)} MB/s, ` +
      `read ${Math.round(store.read_mb_s)} MB/s`,
    `targets:`,
    `  checkpoint >= 0.5 x pickle+write (>= ${Math.round(t.checkpoint_throughput.required_mb_s)} MB/s): ` +
      `service ${Math.round(t.checkpoint_throughput.service.value)} MB/s ${mark(t.checkpoint_throughput.service.met)} ` +
      `(${t.checkpoint_throughput.service.ratio.toFixed(2)}x), ` +
      `dir ${Math.round(t.checkpoint_throughput.dir.value)} MB/s ${mark(t.checkpoint_throughput.dir.met)} ` +
      `(${t.checkpoint_throughput.dir.ratio.toFixed(2)}x)`,
    `  restore faster than dill load (${fmt(t.restore_vs_dill_load.dill_load_s)} s): ` +
      `service ${fmt(t.restore_vs_dill_load.service.value)} s ${mark(t.restore_vs_dill_load.service.met)}, ` +
      `dir ${fmt(t.restore_vs_dill_load.dir.value)} s ${mark(t.restore_vs_dill_load.dir.met)}`,
    failed.length === 0
      ? `correctness: all ${checks.length} restores/loads match the original (sha256 of every array and column, repr of the rest)`
      : `correctness: ${failed.length} of ${checks.length} restores/loads DIFFER: ` +
        failed.map((c) => `round ${c.round} ${c.what}: ${c.problems.join('; ')}`).join(' | '),
    `written: ${resultPath} (${fmt(result.duration_s)} s in all)`,
  ].join('\n');
}

function cpuText(cpu: CpuMedians): string {
  return `${fmt(cpu.service_node)} / ${fmt(cpu.kernel)} / ${fmt(cpu.postgres)}`;
}

function fmt(seconds: number): string {
  return seconds.toFixed(2);
}

function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

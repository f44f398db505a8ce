/**
 * The service side of the fault-injection suite, in a process of its own so a trial can SIGKILL
 * it half way through a checkpoint. Wired as bench/bench-service.ts wires the service (and
 * src/app.ts the real one): `PgCheckpointStore`, `PgBlobStore` over the object store the
 * environment names (`openObjectStore`), `BlobGrants` with a fixed secret, the real web app
 * (`createWebApp`) for the agents' blob uploads and downloads, and a `CheckpointRunner`. No hub,
 * no culler, no background rounds: checkpoints are taken only when the suite asks.
 *
 * Environment (all required unless a default is given):
 * - `DATABASE_URL`: the migrated database.
 * - `RESUME_GRANT_SECRET`: the grant key (≥ 32 characters); the suite mints download grants with it too.
 * - `RESUME_BLOB_STORE`: `postgres` (default) or `filesystem`, with `RESUME_BLOB_DIR`.
 * - `FAULT_SERVICE_PORT`: the loopback port to listen on (the same for every service process of a
 *   run, so restores handed out before a restart still point at it).
 * - `RESUME_LOG_LEVEL`: default `warn`; logs go to stderr.
 *
 * Besides the service's own routes, a control API for the suite (loopback, unauthenticated):
 * - `GET /control/health`: 200 once the database answers a query, 503 while it does not.
 * - `GET /control/quiet`: `{ checkpoints, uploads }` in progress in this process.
 * - `POST /control/checkpoint` `{ connectionFile, sessionId, runId }`: connects to that local
 *   kernel over ZeroMQ (its connection file, as `verify` does), runs one `manual` checkpoint with
 *   `CheckpointRunner` and answers 201 `{ checkpoint }`, or the error as the web app answers errors.
 *
 * #### Notes
 * The kernels' agents run without `JUPYTERHUB_RESUME_URL`: they never register or post records,
 * so sessions and runs are created by the suite through the store, as the bench does. The runner
 * hands each agent an `http` target (this service's blob URL and an upload grant).
 */
import type { Server } from 'node:http';
import express from 'express';
import { z } from 'zod';
import { AgentClient } from '../../src/agent/agent-client.js';
import { CheckpointRunner } from '../../src/checkpoint/checkpoint-runner.js';
import { KernelCheckpoints } from '../../src/checkpoint/kernel-checkpoints.js';
import { JupyterUserServers } from '../../src/culler/jupyter-user-servers.js';
import { StoreKernelAdopter } from '../../src/culler/store-kernel-adopter.js';
import { ResumeError, isResumeError } from '../../src/errors.js';
import { HttpHubClient } from '../../src/hub/http-hub-client.js';
import { readConnectionFile } from '../../src/jupyter/connection-info.js';
import { ZmqKernelChannel } from '../../src/jupyter/zmq-kernel-channel.js';
import { createLogger } from '../../src/log.js';
import { DEFAULT_ALPHA } from '../../src/planner/cost-model.js';
import { StoreBandwidth } from '../../src/planner/store-bandwidth.js';
import { RestoreHandout } from '../../src/restore/restore-handout.js';
import type { BlobStore } from '../../src/store/checkpoint-store.js';
import { openObjectStore } from '../../src/store/open-object-store.js';
import { PgBlobStore } from '../../src/store/postgres/pg-blob-store.js';
import { PgCheckpointStore } from '../../src/store/postgres/pg-checkpoint-store.js';
import { createPool, withClient } from '../../src/store/postgres/pool.js';
import { BlobGrants } from '../../src/web/auth/blob-grants.js';
import { HubIdentities } from '../../src/web/auth/hub-identity.js';
import { ServiceMetrics } from '../../src/web/service-metrics.js';
import { createWebApp } from '../../src/web/web-app.js';
import { FAULT_RETENTION, FAULT_SERVICE_PREFIX } from './fault-fixtures.js';

/** A checkpoint that takes longer than this failed (the suite's are a few seconds). */
const CHECKPOINT_TIMEOUT_MS = 120_000;

/**
 * The heartbeat watch of the runner's kernel channel: a killed kernel fails the checkpoint after
 * this long instead of the default 5 s (its heartbeat thread answers even while Python is busy).
 */
const HEARTBEAT_TIMEOUT_MS = 2_000;

const environmentSchema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL'),
  RESUME_GRANT_SECRET: z.string().min(32, 'must be at least 32 characters'),
  RESUME_BLOB_STORE: z.enum(['postgres', 'filesystem']).default('postgres'),
  RESUME_BLOB_DIR: z.string().min(1).optional(),
  FAULT_SERVICE_PORT: z.coerce.number().int().min(1).max(65_535),
  RESUME_LOG_LEVEL: z.string().default('warn'),
});

const checkpointRequestSchema = z.object({
  connectionFile: z.string().min(1),
  sessionId: z.string().min(1),
  runId: z.string().min(1),
});

async function main(): Promise<void> {
  const parsed = environmentSchema.safeParse(process.env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`fault-service: bad environment (${problems}); it is started by test/faults/checkpoint-faults.trial.ts`);
  }
  const env = parsed.data;
  if (env.RESUME_BLOB_STORE === 'filesystem' && env.RESUME_BLOB_DIR === undefined) {
    throw new Error('fault-service: RESUME_BLOB_DIR is required when RESUME_BLOB_STORE is filesystem');
  }
  const logger = createLogger({ level: env.RESUME_LOG_LEVEL, name: 'fault-service' });
  const pool = createPool(env.DATABASE_URL, { logger });
  const store = new PgCheckpointStore(pool, { logger });
  const objects = await openObjectStore(
    {
      blobStore: env.RESUME_BLOB_STORE,
      ...(env.RESUME_BLOB_DIR === undefined ? {} : { blobDir: env.RESUME_BLOB_DIR }),
      s3Region: 'us-east-1',
      s3Prefix: 'jupyterhub-resume/',
    },
    pool,
    logger,
  );
  const inFlight = { checkpoints: 0, uploads: 0 };
  const blobs = countUploads(new PgBlobStore(pool, objects, { logger }), inFlight);
  const grants = new BlobGrants({ secret: env.RESUME_GRANT_SECRET, ttlS: 900 });
  const metrics = new ServiceMetrics();
  const agentUrl = `http://127.0.0.1:${env.FAULT_SERVICE_PORT}${FAULT_SERVICE_PREFIX}`;
  // Every group stored (no recompute): the blobs are what the suite is about. The bandwidth is
  // fixed so no start-up probe writes objects of its own into the store under test.
  const runner = new CheckpointRunner({
    store,
    grants,
    agentUrl,
    timeoutMs: CHECKPOINT_TIMEOUT_MS,
    planning: { strategy: 'store-all', alpha: DEFAULT_ALPHA, bandwidth: new StoreBandwidth({ writeBytesPerS: 200e6, readBytesPerS: 400e6 }) },
    retention: FAULT_RETENTION,
    metrics,
    logger,
  });
  // The blob routes authenticate with grants only; the hub routes are never called here, so the
  // hub client points at a port nothing listens on (a call would fail loudly).
  const nobody = 'fault-suite-never-sent';
  const hub = new HttpHubClient({ apiUrl: 'http://127.0.0.1:9/hub/api', token: nobody, logger });
  const web = createWebApp({
    prefix: FAULT_SERVICE_PREFIX,
    serviceName: 'resume',
    store,
    blobs,
    grants,
    identities: new HubIdentities({ hub }),
    restores: new RestoreHandout({ store, grants, agentUrl, logger }),
    checkpoints: new KernelCheckpoints({
      servers: new JupyterUserServers({ token: nobody, logger }),
      adopter: new StoreKernelAdopter({ store, token: nobody }),
      runner,
      store,
      logger,
    }),
    metrics,
    logger,
  });

  const app = express();
  app.disable('x-powered-by');
  app.get('/control/health', async (_req, res) => {
    try {
      await withClient(pool, (client) => client.query('SELECT 1'));
      res.json({ status: 'ok' });
    } catch (e) {
      res.status(503).json({ status: 'unavailable', reason: e instanceof Error ? e.message : String(e) });
    }
  });
  app.get('/control/quiet', (_req, res) => {
    res.json(inFlight);
  });
  app.post('/control/checkpoint', express.json(), async (req, res) => {
    inFlight.checkpoints += 1;
    try {
      const body = checkpointRequestSchema.parse(req.body);
      const checkpoint = await checkpointKernel(body);
      res.status(201).json({
        checkpoint: { id: checkpoint.id, state: checkpoint.state, bytesStored: checkpoint.bytesStored, bytesReused: checkpoint.bytesReused },
      });
    } catch (e) {
      const error = isResumeError(e) ? e : new ResumeError('RESUME_ERR_INTERNAL', e instanceof Error ? e.message : String(e), { status: 500 });
      res.status(error.status).json(error.toJSON());
    } finally {
      inFlight.checkpoints -= 1;
    }
  });
  app.use(web);

  async function checkpointKernel(request: z.infer<typeof checkpointRequestSchema>) {
    const session = await store.getSession(request.sessionId);
    const run = await store.getRun(request.runId);
    if (session === null || run === null) throw new Error(`no session ${request.sessionId} or run ${request.runId}`);
    const channel = await ZmqKernelChannel.connect(await readConnectionFile(request.connectionFile), {
      connectTimeoutMs: 10_000,
      heartbeatIntervalMs: 500,
      heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS,
      logger,
    });
    try {
      return await runner.checkpoint({ session, run }, new AgentClient(channel, { timeoutMs: CHECKPOINT_TIMEOUT_MS }), 'manual');
    } finally {
      await channel.dispose();
    }
  }

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(env.FAULT_SERVICE_PORT, '127.0.0.1');
    s.once('listening', () => resolve(s));
    s.once('error', reject);
  });
  logger.info({ agentUrl, blobStore: objects.kind }, 'fault service listening');

  // The suite holds our stdin open; if the suite dies, so do we.
  process.stdin.on('end', () => process.exit(1));
  process.stdin.resume();

  // The suite ends a healthy service with SIGTERM (and a faulty one with SIGKILL).
  process.once('SIGTERM', () => {
    void (async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await objects.close();
      await pool.end();
      process.exit(0);
    })();
  });
}

/** The same blob store, counting the writes in progress (the suite waits for none before it checks). */
function countUploads(blobs: BlobStore, inFlight: { uploads: number }): BlobStore {
  return new Proxy(blobs, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property !== 'write' || typeof value !== 'function') {
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return async (...args: unknown[]) => {
        inFlight.uploads += 1;
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          inFlight.uploads -= 1;
        }
      };
    },
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`fault-service failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

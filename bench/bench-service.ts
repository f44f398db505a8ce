/**
 * The service side of the benchmark, wired as `src/app.ts` wires it: a real embedded Postgres
 * (migrated), `PgCheckpointStore` + `PgBlobStore`, `BlobGrants`, `RestoreHandout`,
 * `ServiceMetrics`, and the real web app (`createWebApp`) listening on a free loopback port, plus
 * the `CheckpointRunner` the culler would use. No hub and no culler.
 *
 * #### Notes
 * The web app needs `HubIdentities`, which needs a `HubClient`. The blob routes (`PUT`/`GET
 * …/checkpoints/<id>/blobs/<key>`) authenticate with grants only (see agent-router.ts: no
 * `authenticate()` on them), so the hub is never asked; it gets an `HttpHubClient` pointing at a
 * loopback port nothing listens on, so a route that did ask would fail loudly rather than
 * silently pass, and it is wrapped to count calls (`hubCalls()`, reported by the bench). Sessions and runs, which a registering kernel would create through the hub-token
 * routes, are created through the store instead.
 */
import { chmod, mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import type pg from 'pg';
import { CheckpointRunner } from '../src/checkpoint/checkpoint-runner.js';
import { DEFAULT_ALPHA } from '../src/planner/cost-model.js';
import type { PlanStrategy } from '../src/planner/replication-planner.js';
import { StoreBandwidth } from '../src/planner/store-bandwidth.js';
import { HttpHubClient } from '../src/hub/http-hub-client.js';
import { createLogger, type Logger } from '../src/log.js';
import { RestoreHandout } from '../src/restore/restore-handout.js';
import { EmbeddedPostgresServer } from '../src/store/postgres/embedded-postgres-server.js';
import { DEFAULT_MIGRATIONS_DIR, migrate } from '../src/store/postgres/migrate.js';
import { KernelCheckpoints } from '../src/checkpoint/kernel-checkpoints.js';
import { JupyterUserServers } from '../src/culler/jupyter-user-servers.js';
import { StoreKernelAdopter } from '../src/culler/store-kernel-adopter.js';
import type { ObjectStore } from '../src/store/object-store.js';
import { PgBlobStore } from '../src/store/postgres/pg-blob-store.js';
import { PgObjectStore } from '../src/store/postgres/pg-object-store.js';
import { PgCheckpointStore } from '../src/store/postgres/pg-checkpoint-store.js';
import { createPool } from '../src/store/postgres/pool.js';
import { BlobGrants } from '../src/web/auth/blob-grants.js';
import { HubIdentities } from '../src/web/auth/hub-identity.js';
import { ServiceMetrics } from '../src/web/service-metrics.js';
import { createWebApp } from '../src/web/web-app.js';

const PREFIX = '/services/resume/';
const DATABASE = 'resume_bench';
/** The Postgres settings that decide how fast blobs are written, recorded with the results. */
const REPORTED_SETTINGS = [
  'server_version',
  'shared_buffers',
  'fsync',
  'synchronous_commit',
  'wal_level',
  'full_page_writes',
  'wal_compression',
  'max_wal_size',
  'checkpoint_timeout',
  'wal_buffers',
] as const;

/** The running service under test. Stop it with `stop()`. */
export type BenchService = {
  /** The service root as agents reach it (with trailing slash), like `config.agentUrl`. */
  agentUrl: string;
  store: PgCheckpointStore;
  blobs: PgBlobStore;
  grants: BlobGrants;
  restores: RestoreHandout;
  checkpoints: CheckpointRunner;
  /** A runner on the same store that follows `strategy` over `bandwidth` (the planner bench's). */
  plannedCheckpoints(strategy: PlanStrategy, bandwidth: StoreBandwidth, alpha?: number): CheckpointRunner;
  pool: pg.Pool;
  logger: Logger;
  /** How many times anything called the hub client (the blob routes must not: expected 0). */
  hubCalls(): number;
  /** Postgres settings that matter for blob throughput (name → value as Postgres shows it). */
  settings(): Promise<Record<string, string>>;
  /** Closes the web server and the pool, stops Postgres. Idempotent; never throws. */
  stop(): Promise<void>;
};

/**
 * Starts Postgres with its data in `dir` (created; it must not exist or be empty) and the service.
 * @param dir a directory the bench removes afterwards.
 * @param options.objects where blob bytes go (default: Postgres itself, as the service's default).
 */
export async function startBenchService(
  dir: string,
  options: { objects?: (pool: pg.Pool) => ObjectStore } = {},
): Promise<BenchService> {
  // Logs go to stderr, warnings only: stdout is the benchmark's summary.
  const logger = createLogger({ level: process.env['RESUME_LOG_LEVEL'] ?? 'warn', name: 'resume-bench' });
  await mkdir(dir, { recursive: true });
  // Postgres runs as the `postgres` OS user when we are root and must reach its data dir.
  await chmod(dir, 0o755);
  const postgres = new EmbeddedPostgresServer({ dataDir: join(dir, 'data'), port: 0, logger });
  let pool: pg.Pool | undefined;
  let server: Server | undefined;
  let stopping: Promise<void> | undefined;
  let hubCalls = 0;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (server !== undefined) {
        const s = server;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeAllConnections();
        });
      }
      await pool?.end().catch(() => undefined);
      await postgres.stop().catch((err: unknown) => logger.warn({ err: String(err) }, 'could not stop the embedded Postgres'));
    })();
    return stopping;
  };

  try {
    await postgres.start();
    await postgres.ensureDatabase(DATABASE);
    pool = createPool(postgres.url(DATABASE), { logger });
    await migrate(pool, DEFAULT_MIGRATIONS_DIR, logger);
    const store = new PgCheckpointStore(pool, { logger });
    const blobs = new PgBlobStore(pool, options.objects?.(pool) ?? new PgObjectStore(pool, { logger }), { logger });
    const metrics = new ServiceMetrics();
    const grants = new BlobGrants({ ttlS: 900 });
    // The handout and the runner build blob URLs on the service's address, so pick the port first
    // (as a deployment's config does); another process taking it in between fails the listen loudly.
    const port = await unusedPort();
    let hubPort = await unusedPort();
    while (hubPort === port) hubPort = await unusedPort();
    const hub = countCalls(new HttpHubClient({ apiUrl: `http://127.0.0.1:${hubPort}/hub/api`, token: 'bench-never-sent', logger }), () => {
      hubCalls++;
    });
    const identities = new HubIdentities({ hub });
    const agentUrl = `http://127.0.0.1:${port}${PREFIX}`;
    const restores = new RestoreHandout({ store, grants, agentUrl, logger });
    const runner = (strategy: PlanStrategy, bandwidth: StoreBandwidth, alpha = DEFAULT_ALPHA) =>
      new CheckpointRunner({ store, grants, agentUrl, timeoutMs: 600_000, planning: { strategy, alpha, bandwidth }, metrics, logger });
    // The round trip measures storing everything: the plan is store-all.
    const checkpoints = runner('store-all', new StoreBandwidth());
    // The web app's kernel routes need these; the bench never calls them (no Jupyter server here).
    const kernelCheckpoints = new KernelCheckpoints({
      servers: new JupyterUserServers({ token: 'bench-never-sent', logger }),
      adopter: new StoreKernelAdopter({ store, token: 'bench-never-sent' }),
      runner: checkpoints,
      store,
      logger,
    });
    server = await listen(
      createWebApp({
        prefix: PREFIX,
        serviceName: 'resume',
        store,
        blobs,
        grants,
        identities,
        restores,
        checkpoints: kernelCheckpoints,
        metrics,
        logger,
      }),
      port,
    );
    const ownPool = pool;
    return {
      agentUrl,
      store,
      blobs,
      grants,
      restores,
      checkpoints,
      plannedCheckpoints: runner,
      pool: ownPool,
      logger,
      hubCalls: () => hubCalls,
      async settings() {
        const { rows } = await ownPool.query<{ name: string; setting: string }>(
          `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY($1)`,
          [REPORTED_SETTINGS],
        );
        return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The same client, calling `onCall` before each of its methods runs. */
function countCalls<T extends object>(client: T, onCall: () => void): T {
  return new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        onCall();
        // `target` as `this`: HttpHubClient keeps its state in #private fields, which a proxy lacks.
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

function listen(app: import('express').Express, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, '127.0.0.1');
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

/** A loopback port that was free a moment ago and that nothing of ours listens on. */
async function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

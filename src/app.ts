import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { CheckpointRunner } from './checkpoint/checkpoint-runner.js';
import { KernelCheckpoints } from './checkpoint/kernel-checkpoints.js';
import type { Config } from './config/config-schema.js';
import { Culler } from './culler/culler.js';
import { JupyterUserServers } from './culler/jupyter-user-servers.js';
import { ServiceTouches } from './culler/service-touches.js';
import { StoreKernelAdopter } from './culler/store-kernel-adopter.js';
import { HttpHubClient } from './hub/http-hub-client.js';
import { BackgroundCheckpoints } from './lifecycle/background-checkpoints.js';
import { Maintenance } from './lifecycle/maintenance.js';
import { createLogger, type Logger } from './log.js';
import { StoreBandwidth } from './planner/store-bandwidth.js';
import { RestoreHandout } from './restore/restore-handout.js';
import type { BlobStore } from './store/checkpoint-store.js';
import { openObjectStore } from './store/open-object-store.js';
import { migrate } from './store/postgres/migrate.js';
import { PgBlobStore } from './store/postgres/pg-blob-store.js';
import { PgCheckpointStore } from './store/postgres/pg-checkpoint-store.js';
import { createPool } from './store/postgres/pool.js';
import { BlobGrants } from './web/auth/blob-grants.js';
import { HubIdentities } from './web/auth/hub-identity.js';
import { ServiceMetrics } from './web/service-metrics.js';
import { createWebApp } from './web/web-app.js';

const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));

/** A started service: where it listens, its parts (for tests), and how to stop it. */
export type RunningService = {
  url: string;
  culler: Culler | null;
  background: BackgroundCheckpoints | null;
  maintenance: Maintenance;
  blobs: BlobStore;
  metrics: ServiceMetrics;
  logger: Logger;
  /** Stops intake, waits for rounds in progress, closes the stores. Idempotent. */
  stop(): Promise<void>;
};

/**
 * The composition root: the only place that picks concrete classes and wires them together.
 *
 * Start-up order matters: the database schema is migrated before anything can write, the HTTP API
 * listens before the culler's first round (a round may checkpoint, and agents upload to the API).
 *
 * @param config the validated configuration.
 * @param options.logger a logger to use instead of a new one (tests).
 * @param options.now the clock (tests travel in time through it).
 */
export async function startService(
  config: Config,
  options: { logger?: Logger; now?: () => Date } = {},
): Promise<RunningService> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const pool = createPool(config.databaseUrl, { logger });
  try {
    await migrate(pool, MIGRATIONS_DIR, logger);
  } catch (e) {
    await pool.end();
    throw e;
  }
  const store = new PgCheckpointStore(pool);
  let objects;
  try {
    objects = await openObjectStore(config, pool, logger);
  } catch (e) {
    await pool.end();
    throw e;
  }
  const blobs = new PgBlobStore(pool, objects, { logger });
  logger.info({ blobStore: objects.kind }, 'blob store ready');
  const bandwidth = storeBandwidth(config, blobs, logger);
  const hub = new HttpHubClient({ apiUrl: config.hubApiUrl, token: config.hubApiToken, logger });
  const metrics = new ServiceMetrics();
  const grants = new BlobGrants({
    ...(config.grantSecret === undefined ? {} : { secret: config.grantSecret }),
    ttlS: config.grantTtlS,
  });
  if (config.grantSecret === undefined) {
    logger.info('no RESUME_GRANT_SECRET set: blob grants are signed with a per-process key');
  }
  const identities = new HubIdentities({ hub });
  const restores = new RestoreHandout({ store, grants, agentUrl: config.agentUrl, logger });
  const now = options.now ?? (() => new Date());
  const retention = { keepLast: config.keepCheckpoints, maxAgeS: config.keepDays * 86_400 };
  const runner = new CheckpointRunner({
    store,
    grants,
    agentUrl: config.agentUrl,
    timeoutMs: config.checkpointTimeoutS * 1000,
    planning: { strategy: config.plan, alpha: config.planAlpha, bandwidth },
    retention,
    ...(config.userQuotaMb === undefined ? {} : { quotaBytes: config.userQuotaMb * 1e6 }),
    now,
    metrics,
    logger,
  });
  const servers = new JupyterUserServers({ token: config.hubApiToken, logger });
  const checkpoints = new KernelCheckpoints({
    servers,
    adopter: new StoreKernelAdopter({ store, token: config.hubApiToken }),
    runner,
    store,
    logger,
  });

  const app = createWebApp({
    prefix: config.servicePrefix,
    serviceName: config.serviceName,
    store,
    blobs,
    grants,
    identities,
    restores,
    checkpoints,
    ...(config.userQuotaMb === undefined ? {} : { quotaBytes: config.userQuotaMb * 1e6 }),
    bandwidth,
    metrics,
    logger,
  });
  const server = await listen(app, config.listen.host, config.listen.port);
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.listen.port;
  const url = `http://${config.listen.host}:${port}${config.servicePrefix}`;
  logger.info({ url, prefix: config.servicePrefix }, 'jupyterhub-resume listening');

  hub.version().then(
    (version) => logger.info({ hubVersion: version, hubApiUrl: config.hubApiUrl }, 'connected to the hub'),
    (e: unknown) => logger.warn({ hubApiUrl: config.hubApiUrl, reason: String(e) }, 'hub not reachable yet'),
  );

  const touches = new ServiceTouches();
  let culler: Culler | null = null;
  if (config.cullEnabled) {
    culler = new Culler({
      touches,
      hub,
      store,
      servers,
      checkpoints,
      timeoutS: config.cullTimeoutS,
      everyS: config.cullEveryS,
      cullOnCheckpointFailure: config.cullOnCheckpointFailure,
      ...(config.hubPublicUrl === undefined ? {} : { hubPublicUrl: config.hubPublicUrl }),
      now,
      metrics,
      logger,
    });
    culler.start();
    logger.info(
      { timeoutS: config.cullTimeoutS, everyS: config.cullEveryS, cullOnCheckpointFailure: config.cullOnCheckpointFailure },
      'culler started',
    );
  }
  let background: BackgroundCheckpoints | null = null;
  if (config.backgroundCheckpoints) {
    // Rounds a few times per idle period, at most once a minute: a kernel is saved soon after it qualifies.
    const everyS = Math.max(1, Math.min(60, Math.floor(config.backgroundIdleS / 3)));
    background = new BackgroundCheckpoints({ store, servers, checkpoints, touches, idleS: config.backgroundIdleS, everyS, now, logger });
    background.start();
    logger.info({ idleS: config.backgroundIdleS, everyS }, 'background checkpoints started');
  }
  const maintenance = new Maintenance({
    store,
    blobs,
    retention,
    // A writer that has not committed a minute after its timeout is gone.
    abandonedAfterS: config.checkpointTimeoutS + 60,
    everyS: config.maintenanceEveryS,
    now,
    logger,
  });
  maintenance.start();

  let stopping: Promise<void> | null = null;
  return {
    url,
    culler,
    background,
    maintenance,
    blobs,
    metrics,
    logger,
    stop() {
      stopping ??= (async () => {
        await culler?.stop();
        await background?.stop();
        await maintenance.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await objects.close();
        await pool.end();
        logger.info('jupyterhub-resume stopped');
      })();
      return stopping;
    },
  };
}

function listen(app: import('express').Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

/** Bytes the start-up probe writes and reads back: enough to see past per-chunk costs, under a second here. */
const PROBE_BYTES = 32 * 1024 * 1024;

/**
 * The blob store's bandwidth for the planner: what the admin set, else measured in the background
 * (checkpoints before the probe answers use the assumption in store-bandwidth.ts).
 */
function storeBandwidth(config: Config, blobs: BlobStore, logger: Logger): StoreBandwidth {
  const bandwidth = new StoreBandwidth({
    ...(config.storeWriteMbps === undefined ? {} : { writeBytesPerS: config.storeWriteMbps * 1e6 }),
    ...(config.storeReadMbps === undefined ? {} : { readBytesPerS: config.storeReadMbps * 1e6 }),
  });
  if (!bandwidth.configured) {
    blobs.measureBandwidth(PROBE_BYTES).then(
      (measured) => {
        bandwidth.probed(measured);
        const mbps = (v: number) => Math.round(v / 1e5) / 10;
        logger.info({ writeMBps: mbps(measured.writeBytesPerS), readMBps: mbps(measured.readBytesPerS) }, 'blob store bandwidth measured');
      },
      (e: unknown) => logger.warn({ reason: String(e) }, 'could not measure the blob store bandwidth; planning with the assumed one'),
    );
  }
  return bandwidth;
}

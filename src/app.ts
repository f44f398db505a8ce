import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { CheckpointRunner } from './checkpoint/checkpoint-runner.js';
import type { Config } from './config/config-schema.js';
import { Culler } from './culler/culler.js';
import { JupyterUserServers } from './culler/jupyter-user-servers.js';
import { StoreKernelAdopter } from './culler/store-kernel-adopter.js';
import { HttpHubClient } from './hub/http-hub-client.js';
import { createLogger, type Logger } from './log.js';
import { StoreBandwidth } from './planner/store-bandwidth.js';
import { RestoreHandout } from './restore/restore-handout.js';
import type { BlobStore } from './store/checkpoint-store.js';
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
  metrics: ServiceMetrics;
  logger: Logger;
  /** Stops intake, waits for a culling round in progress, closes the database. Idempotent. */
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
  const blobs = new PgBlobStore(pool);
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

  const app = createWebApp({
    prefix: config.servicePrefix,
    serviceName: config.serviceName,
    store,
    blobs,
    grants,
    identities,
    restores,
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

  let culler: Culler | null = null;
  if (config.cullEnabled) {
    const checkpoints = new CheckpointRunner({
      store,
      blobs,
      grants,
      agentUrl: config.agentUrl,
      timeoutMs: config.checkpointTimeoutS * 1000,
      planning: { strategy: config.plan, alpha: config.planAlpha, bandwidth },
      metrics,
      logger,
    });
    culler = new Culler({
      hub,
      store,
      servers: new JupyterUserServers({ token: config.hubApiToken, logger }),
      adopter: new StoreKernelAdopter({ store, token: config.hubApiToken }),
      checkpoints,
      timeoutS: config.cullTimeoutS,
      everyS: config.cullEveryS,
      cullOnCheckpointFailure: config.cullOnCheckpointFailure,
      ...(config.hubPublicUrl === undefined ? {} : { hubPublicUrl: config.hubPublicUrl }),
      ...(options.now === undefined ? {} : { now: options.now }),
      metrics,
      logger,
    });
    culler.start();
    logger.info(
      { timeoutS: config.cullTimeoutS, everyS: config.cullEveryS, cullOnCheckpointFailure: config.cullOnCheckpointFailure },
      'culler started',
    );
  }

  let stopping: Promise<void> | null = null;
  return {
    url,
    culler,
    metrics,
    logger,
    stop() {
      stopping ??= (async () => {
        await culler?.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
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

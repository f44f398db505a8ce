/**
 * The connection pool and the two ways the stores use it: one client for a piece of work
 * (`withClient`) or one transaction (`withTransaction`). Both turn a lost connection into
 * RESUME_ERR_STORE_UNAVAILABLE and never hand a broken connection back to the pool.
 */
import pg from 'pg';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { isConnectionFailure, mapPgError, storeUnavailable } from './map-pg-error.js';

export type PoolOptions = {
  /** Most connections open at once (default 10). */
  max?: number;
  /** How long to wait for a connection before giving up, in ms (default 10 000). */
  connectionTimeoutMs?: number;
  /** Shown in `pg_stat_activity` (default `jupyterhub-resume`). */
  applicationName?: string;
  logger?: Logger;
};

/** Host, port and database of the pools made by createPool (pg keeps only the raw URL). */
const descriptions = new WeakMap<pg.Pool, string>();

/** Lets work done on a client say that the connection must be closed rather than reused. */
export type ClientLease = { discard(): void };

/**
 * Shows a database URL without its password (and without query parameters, which can carry one).
 * @returns e.g. `postgresql://resume:***@db:5432/resume`
 */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    u.search = '';
    return u.toString();
  } catch {
    return '[unparseable database URL]';
  }
}

/**
 * Creates a `pg.Pool` for a `postgres://` or `postgresql://` URL.
 * @param url the database URL; it may hold a password, so it is never logged or put in an error.
 * @throws ResumeError RESUME_ERR_STORE_URL_INVALID when the URL cannot be used.
 */
export function createPool(url: string, options: PoolOptions = {}): pg.Pool {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not kept as cause: Node's URL error carries the input, password included.
    throw invalidUrl();
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') throw invalidUrl();

  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'jupyterhub-resume',
  });
  descriptions.set(pool, `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}${parsed.pathname}`);
  const logger = options.logger;
  // An idle connection that the server drops (restart, failover) is emitted here; without a
  // listener the process would crash. The pool replaces it on the next checkout.
  pool.on('error', (err) => {
    logger?.warn(
      { database: describePool(pool), sqlState: (err as { code?: unknown }).code, reason: err.message },
      'an idle database connection was closed; the pool will open a new one',
    );
  });
  logger?.debug({ database: redactDatabaseUrl(url) }, 'database pool created');
  return pool;
}

/**
 * Runs `work` on one pooled client and gives the client back.
 *
 * A connection that fails (refused, terminated, server shutting down) surfaces as
 * RESUME_ERR_STORE_UNAVAILABLE and is closed, never reused; other errors from `work` are rethrown
 * unchanged, so callers can map them with their own meaning before falling back to `mapPgError`.
 * @param work receives the client and a lease whose `discard()` closes the connection afterwards.
 */
export async function withClient<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient, lease: ClientLease) => Promise<T>,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    // Anything failing while connecting means unavailable, unless the server said why (bad password, no such database).
    const mapped = mapPgError(err, { database: describePool(pool) });
    throw mapped instanceof ResumeError ? mapped : storeUnavailable(err, { database: describePool(pool) });
  }

  let lost: unknown;
  let discard = false;
  // A checked-out client that loses its connection emits 'error'; pg-pool only listens while the
  // client is idle, so without this listener the process would crash.
  const onError = (err: unknown): void => {
    lost = err;
  };
  client.on('error', onError);
  try {
    return await work(client, { discard: () => void (discard = true) });
  } catch (err) {
    if (lost !== undefined || isConnectionFailure(err)) {
      discard = true;
      throw err instanceof ResumeError ? err : storeUnavailable(err, { database: describePool(pool) });
    }
    throw err;
  } finally {
    client.off('error', onError);
    client.release(discard || lost !== undefined ? new Error('connection discarded') : undefined);
  }
}

/**
 * Runs `work` in one transaction (BEGIN … COMMIT; ROLLBACK when `work` throws).
 * @param options.isolation the isolation level (default READ COMMITTED).
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  options: { isolation?: 'read committed' | 'repeatable read' | 'serializable' } = {},
): Promise<T> {
  return withClient(pool, async (client, lease) => {
    await client.query(options.isolation === undefined ? 'BEGIN' : `BEGIN ISOLATION LEVEL ${options.isolation.toUpperCase()}`);
    let result: T;
    try {
      result = await work(client);
    } catch (err) {
      // If ROLLBACK fails too, the connection's state is unknown: close it rather than reuse it.
      await client.query('ROLLBACK').catch(() => lease.discard());
      throw err;
    }
    await client.query('COMMIT');
    return result;
  });
}

/** Where a pool points, for logs and error context: host, port and database, never credentials. */
export function describePool(pool: pg.Pool): string {
  const known = descriptions.get(pool);
  if (known !== undefined) return known;
  const o = pool.options;
  return `${o.host ?? 'localhost'}:${o.port ?? 5432}/${o.database ?? ''}`;
}

function invalidUrl(): ResumeError {
  // The URL is not repeated: it may carry a password.
  return new ResumeError('RESUME_ERR_STORE_URL_INVALID', 'the database URL is not a postgres:// URL', {
    status: 500,
    hint: 'Set the database URL as postgresql://user:password@host:port/database.',
  });
}

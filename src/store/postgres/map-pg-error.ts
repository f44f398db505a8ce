/**
 * Turns Postgres and connection failures into ResumeErrors, by SQLSTATE and system error code,
 * never by message text (pg's messages change between versions and locales).
 *
 * Unknown failures are returned unchanged: they are bugs, and their stack belongs in the log.
 */
import pg from 'pg';
import { ResumeError, type ErrorContext } from '../../errors.js';

/** Node system error codes that mean "the database could not be reached". */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs (outside class 08) that mean the server is going away or not accepting work yet. */
const UNAVAILABLE_STATES = new Set([
  '57P01', // admin_shutdown: the server is stopping (fast shutdown) or the backend was terminated
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or in recovery
  '57P05', // idle_session_timeout
  '53300', // too_many_connections
]);

const UNAVAILABLE_HINT =
  'Check that Postgres is running and reachable at the configured database URL (the service log ' +
  'shows host, port and database, never the password). The operation can be retried once it is back.';

/** The SQLSTATE of a Postgres error, or undefined if `err` did not come from the server. */
export function sqlState(err: unknown): string | undefined {
  return err instanceof pg.DatabaseError && typeof err.code === 'string' ? err.code : undefined;
}

/** True for a Node system error that means the connection to the database failed. */
export function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' && NETWORK_ERROR_CODES.has(code);
}

/** True when `err` says the connection or the server is gone (the connection must not be reused). */
export function isConnectionFailure(err: unknown): boolean {
  const state = sqlState(err);
  if (state !== undefined) return state.startsWith('08') || UNAVAILABLE_STATES.has(state);
  return isNetworkError(err);
}

/**
 * The ResumeError for "the store cannot be reached right now".
 * @param cause the original failure (kept as `cause`, never shown to API clients).
 * @param context where: database host/port/name, checkpoint id, …
 */
export function storeUnavailable(cause: unknown, context: ErrorContext = {}): ResumeError {
  const state = sqlState(cause);
  return new ResumeError('RESUME_ERR_STORE_UNAVAILABLE', 'the checkpoint database is unavailable', {
    status: 503,
    hint: UNAVAILABLE_HINT,
    context: state === undefined ? context : { ...context, sqlState: state },
    cause,
  });
}

/**
 * Maps a failure from `pg` to a ResumeError when its SQLSTATE (or system error code) says what
 * happened; returns anything else unchanged (ResumeErrors included).
 * @param err what `pg` threw.
 * @param context extra context for the log (no values that may hold secrets).
 * @returns a ResumeError, or `err` itself.
 */
export function mapPgError(err: unknown, context: ErrorContext = {}): unknown {
  if (err instanceof ResumeError) return err;
  if (isConnectionFailure(err)) return storeUnavailable(err, context);
  const state = sqlState(err);
  if (state === undefined) return err;
  const db = err as pg.DatabaseError;
  // The detail of a constraint error can quote row values; keep names only.
  const ctx: ErrorContext = { ...context, sqlState: state, table: db.table, constraint: db.constraint };
  const make = (code: string, message: string, status: number, hint: string) =>
    new ResumeError(code, message, { status, hint, context: ctx, cause: err });

  switch (state) {
    case '23505':
      return make(
        'RESUME_ERR_STORE_CONFLICT',
        `a record with the same key already exists (${db.constraint ?? 'unique constraint'})`,
        409,
        'Another request created it first; read it back instead of creating it again.',
      );
    case '23503':
      return make(
        'RESUME_ERR_STORE_REFERENCE_MISSING',
        `the record refers to something that does not exist (${db.constraint ?? 'foreign key'})`,
        409,
        'The session, run or checkpoint it refers to was deleted or never existed; start from a fresh one.',
      );
    case '23502':
    case '23514':
      return make(
        'RESUME_ERR_STORE_INVALID_INPUT',
        `the database refused a value (${db.constraint ?? db.column ?? 'constraint'})`,
        400,
        'Check the values sent against docs/reference/agent-protocol.md.',
      );
    case '40001':
    case '40P01':
      return make(
        'RESUME_ERR_STORE_BUSY',
        'the database aborted the transaction because of a concurrent one',
        503,
        'Retry the operation.',
      );
    case '57014':
      return make(
        'RESUME_ERR_STORE_TIMEOUT',
        'the database cancelled a statement that ran too long',
        503,
        'Retry later; if it keeps happening, check the database load and statement_timeout.',
      );
    case '28P01':
    case '28000':
      return make(
        'RESUME_ERR_STORE_AUTH_FAILED',
        'the database refused the service’s credentials',
        503,
        'Check the user name and password in the database URL the service is configured with.',
      );
    case '3D000':
      return make(
        'RESUME_ERR_STORE_DATABASE_MISSING',
        'the configured database does not exist',
        503,
        'Create the database (CREATE DATABASE …) or fix the database name in the database URL.',
      );
    case '42P01':
    case '42703':
      return make(
        'RESUME_ERR_STORE_SCHEMA_OUTDATED',
        'the database schema is missing a table or column the service needs',
        500,
        'Run the migrations (the service applies them at start) against this database.',
      );
    case '53100':
    case '53200':
      return make(
        'RESUME_ERR_STORE_FULL',
        'the database ran out of disk space or memory',
        507,
        'Free disk space on the database server or delete old checkpoints, then retry.',
      );
    default:
      if (state.startsWith('22')) {
        return make(
          'RESUME_ERR_STORE_INVALID_INPUT',
          'the database refused a value it cannot store',
          400,
          'Check the values sent (text cannot contain NUL characters; ids are UUIDs).',
        );
      }
      return err;
  }
}

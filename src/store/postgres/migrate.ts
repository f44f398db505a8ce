/**
 * Applies the numbered, forward-only SQL files of `migrations/` to a database.
 *
 * Each file runs in its own transaction and is recorded in `schema_migration` with its checksum.
 * A session-level advisory lock makes two processes that start at once take turns: the second
 * finds everything applied and does nothing.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { mapPgError, sqlState } from './map-pg-error.js';
import { withClient } from './pool.js';

/** `migrations/` of this repository, resolved from this file (works when run from source with tsx). */
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

/** An arbitrary, fixed advisory lock key that only the migration runner takes. */
const MIGRATION_LOCK_KEY = '7311946028455102911';
const FILE_NAME = /^(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$/;

/** One migration file. */
export type Migration = { version: number; name: string; file: string; sql: string; checksum: string };

export type MigrationResult = {
  /** File names applied by this call, in order (empty when the database was up to date). */
  applied: string[];
  /** The schema version after the call: the highest applied migration number. */
  version: number;
};

/**
 * Brings the database schema up to date.
 * @param pool the database to migrate.
 * @param migrationsDir a directory of `NNNN_<verb>_<noun>.sql` files numbered 0001, 0002, … without gaps.
 * @param logger logs each applied migration and its duration.
 * @throws ResumeError RESUME_ERR_STORE_MIGRATION_INVALID (bad file names or numbering),
 *   RESUME_ERR_STORE_MIGRATION_MODIFIED (an applied file was edited),
 *   RESUME_ERR_STORE_SCHEMA_TOO_NEW (the database has migrations this code does not know),
 *   RESUME_ERR_STORE_MIGRATION_FAILED (a file failed; its transaction was rolled back).
 */
export async function migrate(pool: pg.Pool, migrationsDir: string, logger?: Logger): Promise<MigrationResult> {
  const migrations = await readMigrations(migrationsDir);
  return withClient(pool, async (client, lease) => {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await ensureMigrationTable(client);
      const applied = await appliedMigrations(client);
      checkApplied(applied, migrations);
      const pending = migrations.filter((m) => !applied.has(m.version));
      for (const migration of pending) await applyOne(client, migration, logger);
      const version = migrations.length === 0 ? 0 : Math.max(...migrations.map((m) => m.version));
      if (pending.length > 0) logger?.info({ version, applied: pending.map((m) => m.file) }, 'database schema migrated');
      return { applied: pending.map((m) => m.file), version };
    } finally {
      // The lock dies with the session anyway; a connection that cannot unlock is not reused.
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => lease.discard());
    }
  }).catch((err: unknown) => {
    throw mapPgError(err);
  });
}

/**
 * Reads and checks the migration files of a directory, in order.
 * @throws ResumeError RESUME_ERR_STORE_MIGRATION_INVALID
 */
export async function readMigrations(migrationsDir: string): Promise<Migration[]> {
  const files = (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: Migration[] = [];
  for (const file of files) {
    const match = FILE_NAME.exec(file);
    if (match === null) {
      throw invalid(`${file} is not named NNNN_<verb>_<noun>.sql`, 'Rename it, e.g. 0004_create_plan_step.sql.');
    }
    const sql = await readFile(path.join(migrationsDir, file), 'utf8');
    migrations.push({
      version: Number(match[1]),
      name: match[2] ?? '',
      file,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
    });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw invalid(
        `migration ${m.file} should be number ${String(i + 1).padStart(4, '0')}`,
        'Number migrations 0001, 0002, … with no gaps and no duplicates.',
      );
    }
  });
  return migrations;
}

// The runner's own bookkeeping table cannot come from a migration; it is created once, under the lock.
async function ensureMigrationTable(client: pg.PoolClient): Promise<void> {
  const { rows } = await client.query<{ exists: boolean }>(
    "SELECT to_regclass('schema_migration') IS NOT NULL AS exists",
  );
  if (rows[0]?.exists === true) return;
  await client.query(`
    CREATE TABLE schema_migration (
      version     integer     PRIMARY KEY CHECK (version > 0),
      name        text        NOT NULL,
      checksum    text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
      applied_at  timestamptz NOT NULL DEFAULT now(),
      duration_ms integer     NOT NULL CHECK (duration_ms >= 0)
    )`);
}

type AppliedMigration = { version: number; name: string; checksum: string };

async function appliedMigrations(client: pg.PoolClient): Promise<Map<number, AppliedMigration>> {
  const { rows } = await client.query<AppliedMigration>('SELECT version, name, checksum FROM schema_migration ORDER BY version');
  return new Map(rows.map((r) => [r.version, r]));
}

function checkApplied(applied: Map<number, AppliedMigration>, migrations: Migration[]): void {
  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  for (const row of applied.values()) {
    const file = byVersion.get(row.version);
    if (file === undefined) {
      throw new ResumeError(
        'RESUME_ERR_STORE_SCHEMA_TOO_NEW',
        `the database has migration ${row.version} (${row.name}), which this version of the service does not know`,
        {
          status: 500,
          hint: 'Run the newer service version this database was migrated with; migrations are forward-only.',
          context: { version: row.version },
        },
      );
    }
    if (file.checksum !== row.checksum || file.name !== row.name) {
      throw new ResumeError(
        'RESUME_ERR_STORE_MIGRATION_MODIFIED',
        `migration ${file.file} was changed after it was applied to this database`,
        {
          status: 500,
          hint: 'Restore the file as it was and put the change in a new numbered migration.',
          context: { version: row.version },
        },
      );
    }
  }
}

async function applyOne(client: pg.PoolClient, migration: Migration, logger: Logger | undefined): Promise<void> {
  const t0 = performance.now();
  await client.query('BEGIN');
  try {
    // No parameters: the simple query protocol runs every statement of the file.
    await client.query(migration.sql);
    await client.query(
      'INSERT INTO schema_migration (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)',
      [migration.version, migration.name, migration.checksum, Math.round(performance.now() - t0)],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    const mapped = mapPgError(err);
    // Unavailable is retryable as is; anything else is a problem in the file.
    if (mapped instanceof ResumeError && mapped.code === 'RESUME_ERR_STORE_UNAVAILABLE') throw mapped;
    const position = (err as { position?: string }).position;
    throw new ResumeError(
      'RESUME_ERR_STORE_MIGRATION_FAILED',
      `migration ${migration.file} failed${err instanceof Error ? `: ${err.message}` : ''}`,
      {
        status: 500,
        hint: 'Nothing of this migration was applied. Fix the SQL (or the database state it expects) and start again.',
        context: { migration: migration.file, sqlState: sqlState(err), position },
        cause: err,
      },
    );
  }
  logger?.info({ migration: migration.file, ms: Math.round(performance.now() - t0) }, 'migration applied');
}

function invalid(message: string, hint: string): ResumeError {
  return new ResumeError('RESUME_ERR_STORE_MIGRATION_INVALID', message, { status: 500, hint });
}

import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { migrate, readMigrations } from '../../../src/store/postgres/migrate.js';
import { createPool } from '../../../src/store/postgres/pool.js';
import { freshDatabase, MIGRATIONS_DIR, startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';

const TABLES = [
  'blob_object',
  'blob_object_chunk',
  'blob_upload',
  'cell_execution',
  'checkpoint',
  'checkpoint_blob',
  'kernel_run',
  'kernel_session',
  'schema_migration',
  'session_blob',
];

describe('migrate', () => {
  let postgres: StartedPostgres;
  const tempDirs: string[] = [];

  before(async () => {
    postgres = await startPostgres({ migrate: false });
  });

  after(async () => {
    for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
    await postgres?.stop();
  });

  async function copyOfMigrations(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'resume-migrations-'));
    tempDirs.push(dir);
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    return dir;
  }

  async function tablesOf(pool: StartedPostgres['pool']): Promise<string[]> {
    const { rows } = await pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    return rows.map((r) => r.table_name);
  }

  it('creates every table in an empty database and records each migration once', async () => {
    assert.deepEqual(await tablesOf(postgres.pool), []);
    const files = (await readMigrations(MIGRATIONS_DIR)).map((m) => m.file);

    const result = await migrate(postgres.pool, MIGRATIONS_DIR);

    assert.deepEqual(result.applied, files);
    assert.equal(result.version, files.length);
    assert.deepEqual(await tablesOf(postgres.pool), TABLES);
    const { rows } = await postgres.pool.query('SELECT version, name FROM schema_migration ORDER BY version');
    assert.deepEqual(
      rows.map((r) => `${String(r.version).padStart(4, '0')}_${r.name}.sql`),
      files,
    );
  });

  it('does nothing when run again on a migrated database', async () => {
    const before = await postgres.pool.query('SELECT version, applied_at FROM schema_migration ORDER BY version');

    const result = await migrate(postgres.pool, MIGRATIONS_DIR);

    assert.deepEqual(result.applied, []);
    const afterRows = await postgres.pool.query('SELECT version, applied_at FROM schema_migration ORDER BY version');
    assert.deepEqual(afterRows.rows, before.rows);
  });

  it('applies migrations once when two processes start at the same time', async () => {
    const db = await freshDatabase(postgres.server, { migrate: false });
    const second = await freshDatabase(postgres.server, { migrate: false });
    // A second pool on the same database, as another service process would have.
    const other = createPool(db.url, { max: 2 });
    try {
      const [a, b] = await Promise.all([migrate(db.pool, MIGRATIONS_DIR), migrate(other, MIGRATIONS_DIR)]);
      const files = (await readMigrations(MIGRATIONS_DIR)).map((m) => m.file);
      assert.deepEqual([...a.applied, ...b.applied].sort(), files, 'each migration applied by exactly one of them');
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM schema_migration');
      assert.equal(rows[0].n, files.length);
      assert.deepEqual(await tablesOf(second.pool), [], 'other databases untouched');
    } finally {
      await other.end();
    }
  });

  it('refuses to run when an applied migration file was edited', async () => {
    const dir = await copyOfMigrations();
    const db = await freshDatabase(postgres.server, { migrate: false });
    await migrate(db.pool, dir);
    await appendFile(path.join(dir, '0001_create_history.sql'), '\n-- an edit after the fact\n');

    await assert.rejects(migrate(db.pool, dir), (e: unknown) => {
      assert.ok(isResumeError(e));
      assert.equal(e.code, 'RESUME_ERR_STORE_MIGRATION_MODIFIED');
      assert.match(e.message, /0001_create_history\.sql/);
      return true;
    });
  });

  /** The file name the next migration after the repository's own would have. */
  async function nextMigration(name: string): Promise<{ file: string; latest: number }> {
    const latest = (await readMigrations(MIGRATIONS_DIR)).length;
    return { file: `${String(latest + 1).padStart(4, '0')}_${name}.sql`, latest };
  }

  it('rolls back a migration that fails and records nothing of it', async () => {
    const dir = await copyOfMigrations();
    const next = await nextMigration('create_broken');
    await writeFile(
      path.join(dir, next.file),
      'CREATE TABLE half_done (id integer);\nSELECT 1 / 0;\n',
    );
    const db = await freshDatabase(postgres.server, { migrate: false });

    await assert.rejects(migrate(db.pool, dir), (e: unknown) => {
      assert.ok(isResumeError(e));
      assert.equal(e.code, 'RESUME_ERR_STORE_MIGRATION_FAILED');
      assert.equal(e.context['sqlState'], '22012');
      return true;
    });
    assert.ok(!(await tablesOf(db.pool)).includes('half_done'));
    const { rows } = await db.pool.query('SELECT max(version)::int AS v FROM schema_migration');
    assert.equal(rows[0].v, next.latest, 'the migrations before the broken one stay applied');
  });

  it('refuses a database migrated by a newer version', async () => {
    const dir = await copyOfMigrations();
    const { file } = await nextMigration('create_extra');
    await writeFile(path.join(dir, file), 'CREATE TABLE extra (id integer);\n');
    const db = await freshDatabase(postgres.server, { migrate: false });
    await migrate(db.pool, dir);
    await rm(path.join(dir, file));

    await assert.rejects(migrate(db.pool, dir), { code: 'RESUME_ERR_STORE_SCHEMA_TOO_NEW' });
  });

  it('refuses migration files that are misnamed or misnumbered', async () => {
    const misnamed = await copyOfMigrations();
    await writeFile(path.join(misnamed, 'add-stuff.sql'), 'SELECT 1;\n');
    await assert.rejects(readMigrations(misnamed), { code: 'RESUME_ERR_STORE_MIGRATION_INVALID' });

    const gap = await copyOfMigrations();
    // One number past the next free one.
    const skipped = String((await readMigrations(gap)).length + 2).padStart(4, '0');
    await writeFile(path.join(gap, `${skipped}_create_gap.sql`), 'SELECT 1;\n');
    await assert.rejects(readMigrations(gap), { code: 'RESUME_ERR_STORE_MIGRATION_INVALID' });
  });
});

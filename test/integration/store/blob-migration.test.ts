/**
 * Upgrading a database with checkpoints taken before blobs were content-addressed (migration
 * 0009): every complete checkpoint still reads back its bytes, reused groups included, and the
 * leftovers of failed writes are gone.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { migrate } from '../../../src/store/postgres/migrate.js';
import { PgBlobStore } from '../../../src/store/postgres/pg-blob-store.js';
import { PgObjectStore } from '../../../src/store/postgres/pg-object-store.js';
import { collect } from '../../fixtures/byte-streams.js';
import { MIGRATIONS_DIR, startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';

describe('migration 0009: content-addressed blobs', () => {
  let postgres: StartedPostgres;
  let before0009: string;

  before(async () => {
    postgres = await startPostgres({ migrate: false });
    before0009 = await mkdtemp(path.join(os.tmpdir(), 'resume-migrations-'));
    for (const file of await readdir(MIGRATIONS_DIR)) {
      if (file < '0009') await cp(path.join(MIGRATIONS_DIR, file), path.join(before0009, file));
    }
  });

  after(async () => {
    await rm(before0009, { recursive: true, force: true });
    await postgres?.stop();
  });

  it('keeps the bytes of every complete checkpoint, reused groups included, and drops failed writes', async () => {
    const { pool } = postgres;
    await migrate(pool, before0009);
    // Two complete checkpoints of one session as 0008 stored them: the second reuses g0 of the
    // first through blob_reference; plus a failed checkpoint with a half-written blob.
    const q = async (sql: string, params: unknown[] = []) => (await pool.query(sql, params)).rows;
    const [session] = await q(
      "INSERT INTO kernel_session (user_name, server_name, notebook_path, kernel_name) VALUES ('alice', '', 'old.ipynb', 'python3') RETURNING id",
    );
    const [run] = await q(
      "INSERT INTO kernel_run (kernel_session_id, kernel_id, server_url, agent_version) VALUES ($1, 'k', '', '0.1.0') RETURNING id",
      [session.id],
    );
    const checkpoint = async (state: string) =>
      (
        await q(
          `INSERT INTO checkpoint (kernel_session_id, kernel_run_id, trigger, state, manifest, completed_at)
           VALUES ($1, $2, 'cull', $3, CASE WHEN $3 = 'complete' THEN '{}'::jsonb END, CASE WHEN $3 = 'complete' THEN now() END) RETURNING id`,
          [session.id, run.id, state],
        )
      )[0].id as string;
    const blob = async (checkpointId: string, key: string, text: string, complete = true) => {
      const sha = (await q("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex') AS sha", [text]))[0].sha as string;
      const [row] = await q(
        `INSERT INTO blob (checkpoint_id, key, bytes, sha256, complete, completed_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN now() END) RETURNING id`,
        [checkpointId, key, complete ? Buffer.byteLength(text) : null, complete ? sha : null, complete],
      );
      await q('INSERT INTO blob_chunk (blob_id, seq, data) VALUES ($1, 0, convert_to($2, \'UTF8\'))', [row.id, text]);
    };
    const first = await checkpoint('complete');
    await blob(first, 'g0', 'a big array');
    await blob(first, 'g1', 'counts v1');
    const second = await checkpoint('complete');
    await blob(second, 'g1', 'counts v2');
    await q("INSERT INTO blob_reference (checkpoint_id, key, stored_in_checkpoint_id, stored_key) VALUES ($1, 'g0', $2, 'g0')", [second, first]);
    const failed = await checkpoint('failed');
    await blob(failed, 'g0', 'half writ', false);

    await migrate(pool, MIGRATIONS_DIR);

    const blobs = new PgBlobStore(pool, new PgObjectStore(pool));
    const read = async (id: string, key: string) => (await collect((await blobs.read(id, key)).body)).toString();
    assert.equal(await read(first, 'g0'), 'a big array');
    assert.equal(await read(first, 'g1'), 'counts v1');
    assert.equal(await read(second, 'g0'), 'a big array', 'the reused group reads from the same bytes');
    assert.equal(await read(second, 'g1'), 'counts v2');
    assert.deepEqual(await blobs.list(failed), []);
    const objects = await q('SELECT count(*)::int AS n FROM blob_object');
    assert.equal(objects[0].n, 3, 'one object per distinct content; the failed write is gone');
    assert.deepEqual(await blobs.collectGarbage({ abandonedAfterS: 600 }), { blobs: 0, bytes: 0, orphanObjects: 0, incompleteWrites: 0 });
  });
});

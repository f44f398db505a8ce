import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { PgBlobStore } from '../../../src/store/postgres/pg-blob-store.js';
import { PgObjectStore } from '../../../src/store/postgres/pg-object-store.js';
import { PgCheckpointStore } from '../../../src/store/postgres/pg-checkpoint-store.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';
import { waitFor } from '../../fixtures/wait-for.js';
import { collect } from '../../fixtures/byte-streams.js';

const MiB = 1024 * 1024;

describe('Postgres outage during a checkpoint', () => {
  let postgres: StartedPostgres;
  let store: PgCheckpointStore;
  let blobs: PgBlobStore;
  const openStreams: PassThrough[] = [];

  before(async () => {
    postgres = await startPostgres();
    store = new PgCheckpointStore(postgres.pool);
    blobs = new PgBlobStore(postgres.pool, new PgObjectStore(postgres.pool, { chunkBytes: MiB }));
  });

  after(async () => {
    for (const stream of openStreams) stream.destroy();
    await postgres?.stop();
  });

  it('rejects a blob write with RESUME_ERR_STORE_UNAVAILABLE when Postgres stops, and keeps the previous checkpoint readable after a restart', async () => {
    const session = await store.upsertSession({ user: 'alice', server: '', notebookPath: 'big.ipynb', kernelName: 'python3' });
    const run = await store.createRun({
      sessionId: session.id,
      kernelId: 'k1',
      serverUrl: 'http://127.0.0.1:1/user/alice/',
      agentVersion: '0.1.0',
      restoredFromCheckpointId: null,
    });
    const saved = randomBytes(3 * MiB + 17);
    const good = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'cull' });
    const g0 = await blobs.write(good.id, 'g0', Readable.from([saved]));
    await store.commitCheckpoint({ checkpointId: good.id, manifest: { groups: ['g0'] }, cells: [], blobs: [g0], restoreOnNextStart: true });

    const next = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'cull' });
    const upload = new PassThrough();
    openStreams.push(upload);
    const writing = blobs.write(next.id, 'g0', upload);
    const outcome = writing.then(
      () => 'resolved' as const,
      (e: unknown) => e,
    );
    upload.write(randomBytes(2 * MiB + 5));
    // Wait until chunks of the new blob are really in the database.
    await waitFor(
      'two chunks to be stored',
      async () => {
        const { rows } = await postgres.pool.query(
          `SELECT count(*)::int AS n FROM blob_object_chunk c JOIN blob_object o ON o.id = c.object_id
           JOIN blob_upload u ON u.object_name = o.name WHERE u.checkpoint_id = $1`,
          [next.id],
        );
        return rows[0].n >= 2;
      },
      15_000,
      20,
    );

    await postgres.server.stop();
    upload.write(randomBytes(2 * MiB));

    const error = await outcome;
    assert.ok(isResumeError(error), `expected a ResumeError, got ${String(error)}`);
    assert.equal(error.code, 'RESUME_ERR_STORE_UNAVAILABLE');
    assert.equal(error.status, 503);
    assert.ok(error.hint);
    const password = new URL(postgres.url).password;
    assert.ok(!JSON.stringify({ m: error.message, h: error.hint, c: error.context }).includes(password), 'no password in the error');
    await assert.rejects(store.latestCompleteCheckpoint(session.id), { code: 'RESUME_ERR_STORE_UNAVAILABLE' });

    await postgres.server.start();

    const latest = await waitFor('the store to answer', () => store.latestCompleteCheckpoint(session.id), 15_000, 20);
    assert.equal(latest.id, good.id);
    assert.equal(latest.restoreState, 'pending');
    const { blob, body } = await blobs.read(good.id, 'g0');
    assert.deepEqual(blob, g0);
    const back = await collect(body);
    assert.equal(createHash('sha256').update(back).digest('hex'), g0.sha256);
    assert.deepEqual(back, saved);
    // The interrupted write left nothing visible in its checkpoint, which can still be failed.
    assert.deepEqual(await blobs.list(next.id), []);
    assert.equal(await blobs.stat(next.id, 'g0'), null);
    await store.failCheckpoint(next.id, 'database went away');
    assert.equal((await store.latestCompleteCheckpoint(session.id))?.id, good.id);
  });

  it('keeps its data and port across stop and start of the same data dir, and stop is idempotent', async () => {
    const port = postgres.server.port;
    await postgres.pool.query('CREATE TABLE survivor (note text)');
    await postgres.pool.query("INSERT INTO survivor VALUES ('still here')");

    await Promise.all([postgres.server.stop(), postgres.server.stop()]);
    await postgres.server.stop();
    assert.equal(postgres.server.isRunning, false);
    await postgres.server.start();

    assert.equal(postgres.server.port, port);
    const { rows } = await waitFor(
      'the restarted server to answer',
      () => postgres.pool.query('SELECT note FROM survivor').catch(() => undefined),
      15_000,
      20,
    );
    assert.deepEqual(rows, [{ note: 'still here' }]);
  });
});

/**
 * The blob catalog (PgBlobStore) over each object store: content-addressed blobs shared by the
 * checkpoints of a session, uploads that fail or die half way, and garbage collection that leaves
 * no orphan behind, on Postgres, a directory and a real S3 server.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { KernelSession } from '../../../src/store/checkpoint-store.js';
import { FsObjectStore } from '../../../src/store/filesystem/fs-object-store.js';
import type { ObjectStore } from '../../../src/store/object-store.js';
import { PgBlobStore } from '../../../src/store/postgres/pg-blob-store.js';
import { PgCheckpointStore } from '../../../src/store/postgres/pg-checkpoint-store.js';
import { PgObjectStore } from '../../../src/store/postgres/pg-object-store.js';
import { S3ObjectStore } from '../../../src/store/s3/s3-object-store.js';
import { collect, failingStream } from '../../fixtures/byte-streams.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';
import { s3StoreOptions, startS3Server } from '../../fixtures/s3-server.js';

type OpenObjects = (pool: pg.Pool) => Promise<{ objects: ObjectStore; cleanup(): Promise<void> }>;

const MiB = 1024 * 1024;

function blobStoreSuite(name: string, openObjects: OpenObjects): void {
  describe(`PgBlobStore on ${name}`, () => {
    let postgres: StartedPostgres;
    let store: PgCheckpointStore;
    let blobs: PgBlobStore;
    let objects: ObjectStore;
    let cleanup: () => Promise<void> = async () => undefined;
    let notebooks = 0;

    before(async () => {
      postgres = await startPostgres();
      store = new PgCheckpointStore(postgres.pool);
      ({ objects, cleanup } = await openObjects(postgres.pool));
      blobs = new PgBlobStore(postgres.pool, objects);
    });

    after(async () => {
      await cleanup();
      await postgres?.stop();
    });

    async function newSession(): Promise<KernelSession> {
      return store.upsertSession({ user: 'alice', server: '', notebookPath: `blob-${++notebooks}.ipynb`, kernelName: 'python3' });
    }

    async function writingCheckpoint(session?: KernelSession): Promise<{ id: string; session: KernelSession }> {
      const s = session ?? (await newSession());
      const run = await store.createRun({
        sessionId: s.id,
        kernelId: `k-${notebooks}-${randomBytes(3).toString('hex')}`,
        serverUrl: 'http://127.0.0.1:1/user/alice/',
        agentVersion: '0.1.0',
        restoredFromCheckpointId: null,
      });
      return { id: (await store.createCheckpoint({ sessionId: s.id, runId: run.id, trigger: 'manual' })).id, session: s };
    }

    async function objectsOf(session: KernelSession): Promise<string[]> {
      const names: string[] = [];
      for await (const o of objects.list(`sessions/${session.id}/`)) names.push(o.name);
      return names;
    }

    async function commit(checkpointId: string, written: Array<{ key: string; bytes: number; sha256: string }>) {
      return store.commitCheckpoint({ checkpointId, manifest: { checkpoint_id: checkpointId }, cells: [], blobs: written, restoreOnNextStart: false });
    }

    it('streams a blob in and back, with its size and sha256, listed under its checkpoint', async () => {
      const { id } = await writingCheckpoint();
      const data = randomBytes(12 * MiB + 17);

      const stored = await blobs.write(id, 'g0', Readable.from([data.subarray(0, 5 * MiB), data.subarray(5 * MiB)]));

      assert.deepEqual(stored, { key: 'g0', bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') });
      assert.deepEqual(await blobs.stat(id, 'g0'), stored);
      assert.deepEqual(await blobs.list(id), [stored]);
      const back = await blobs.read(id, 'g0');
      assert.deepEqual(back.blob, stored);
      assert.ok((await collect(back.body)).equals(data));
    });

    it('keeps content a session already holds once, whichever checkpoint uploads it again', async () => {
      const first = await writingCheckpoint();
      const g0 = await blobs.write(first.id, 'g0', Readable.from([Buffer.from('the same array')]));
      await commit(first.id, [g0]);
      const second = await writingCheckpoint(first.session);
      const again = await blobs.write(second.id, 'g5', Readable.from([Buffer.from('the same '), Buffer.from('array')]));

      assert.equal(again.sha256, g0.sha256);
      assert.equal((await objectsOf(first.session)).length, 1);
      assert.equal((await collect((await blobs.read(second.id, 'g5')).body)).toString(), 'the same array');
    });

    it('keeps the earlier blob of a key when a new upload of it fails half way, and GC leaves nothing of the attempt', async () => {
      const { id, session } = await writingCheckpoint();
      const earlier = await blobs.write(id, 'g0', Readable.from([Buffer.from('earlier')]));
      const broken = failingStream(randomBytes(3 * MiB), new Error('client went away'));

      await assert.rejects(blobs.write(id, 'g0', broken), { code: 'RESUME_ERR_BLOB_UPLOAD_ABORTED', status: 400 });

      assert.deepEqual(await blobs.stat(id, 'g0'), earlier);
      await blobs.collectGarbage({ abandonedAfterS: 0 });
      assert.equal((await objectsOf(session)).length, 1, 'only the earlier blob');
    });

    it('refuses writes to a committed, unknown or malformed target', async () => {
      const { id } = await writingCheckpoint();
      const g0 = await blobs.write(id, 'g0', Readable.from([Buffer.from('kept')]));
      await commit(id, [g0]);
      await assert.rejects(blobs.write(id, 'g0', Readable.from([Buffer.from('overwrite')])), {
        code: 'RESUME_ERR_CHECKPOINT_NOT_WRITING',
        status: 409,
      });
      await assert.rejects(blobs.write('00000000-0000-4000-8000-000000000000', 'g0', Readable.from([Buffer.from('x')])), {
        code: 'RESUME_ERR_CHECKPOINT_NOT_FOUND',
        status: 404,
      });
      await assert.rejects(blobs.write(id, '../etc/passwd', Readable.from([Buffer.from('x')])), { code: 'RESUME_ERR_BLOB_KEY_INVALID' });
      await assert.rejects(blobs.read(id, 'g9'), { code: 'RESUME_ERR_BLOB_NOT_FOUND', status: 404 });
      assert.deepEqual(await blobs.stat(id, 'g0'), g0);
    });

    it('collects blobs nothing lists and objects nobody catalogued, and never an upload in progress', async () => {
      const kept = await writingCheckpoint();
      const keptBlob = await blobs.write(kept.id, 'g0', Readable.from([Buffer.from('listed by a complete checkpoint')]));
      await commit(kept.id, [keptBlob]);
      const failed = await writingCheckpoint(kept.session);
      await blobs.write(failed.id, 'g1', Readable.from([Buffer.from('only the failed checkpoint had this')]));
      await store.failCheckpoint(failed.id, 'agent died');
      // What a service killed between writing an object and cataloguing it leaves.
      await objects.put(`sessions/${kept.session.id}/00000000-0000-4000-8000-000000000001`, Readable.from([Buffer.from('orphan')]));
      // An upload in progress: its row exists, its object is being (or has just been) written.
      const inFlight = await writingCheckpoint(kept.session);
      const inFlightName = `sessions/${kept.session.id}/00000000-0000-4000-8000-000000000002`;
      await postgres.pool.query('INSERT INTO blob_upload (object_name, checkpoint_id) VALUES ($1, $2)', [inFlightName, inFlight.id]);
      await objects.put(inFlightName, Readable.from([Buffer.from('half way')]));

      const report = await blobs.collectGarbage({ abandonedAfterS: 600 });

      assert.equal(report.blobs, 1);
      assert.equal(report.orphanObjects, 1);
      assert.deepEqual(
        (await objectsOf(kept.session)).sort(),
        [inFlightName, ...(await catalogued(kept.session))].sort(),
        'what is listed, and the upload in progress',
      );
      assert.equal((await collect((await blobs.read(kept.id, 'g0')).body)).toString(), 'listed by a complete checkpoint');

      // Once that checkpoint has failed, its upload is garbage too.
      await store.failCheckpoint(inFlight.id, 'timed out');
      await blobs.collectGarbage({ abandonedAfterS: 600 });
      assert.deepEqual((await objectsOf(kept.session)).sort(), (await catalogued(kept.session)).sort());
    });

    it('never unlists the blobs of a complete checkpoint (a commit whose answer was lost looks failed to its caller)', async () => {
      const { id } = await writingCheckpoint();
      const g0 = await blobs.write(id, 'g0', Readable.from([Buffer.from('committed')]));
      await commit(id, [g0]);

      await store.failCheckpoint(id, 'the commit answer was lost');
      await blobs.deleteCheckpointBlobs(id);
      await blobs.collectGarbage({ abandonedAfterS: 0 });

      assert.equal((await store.getCheckpoint(id))?.state, 'complete');
      assert.equal((await collect((await blobs.read(id, 'g0')).body)).toString(), 'committed');
    });

    it('unlists the blobs of a checkpoint as it is marked failed', async () => {
      const { id } = await writingCheckpoint();
      await blobs.write(id, 'g0', Readable.from([Buffer.from('never committed')]));
      await store.failCheckpoint(id, 'agent died');
      assert.deepEqual(await blobs.list(id), []);
    });

    it('counts the distinct bytes of a user’s complete checkpoints as their usage', async () => {
      const before = await blobs.usage('alice');
      const { id, session } = await writingCheckpoint();
      const a = await blobs.write(id, 'a', Readable.from([Buffer.alloc(1000, 1)]));
      const b = await blobs.write(id, 'b', Readable.from([Buffer.alloc(1000, 1)])); // same bytes: held once
      const c = await blobs.write(id, 'c', Readable.from([Buffer.alloc(500, 2)]));
      assert.equal(await blobs.usage('alice'), before, 'a checkpoint being written counts for nothing yet');
      await commit(id, [a, b, c]);
      assert.equal(await blobs.usage('alice'), before + 1500);
      assert.equal((await objectsOf(session)).length, 2);
    });

    it('measures its bandwidth with a probe object it removes', async () => {
      const measured = await blobs.measureBandwidth(8 * MiB);
      for (const value of [measured.writeBytesPerS, measured.readBytesPerS]) assert.ok(Number.isFinite(value) && value > 0, String(value));
      const left = [];
      for await (const o of objects.list('probes/')) left.push(o.name);
      assert.deepEqual(left, []);
    });

    async function catalogued(session: KernelSession): Promise<string[]> {
      const { rows } = await postgres.pool.query<{ object_name: string }>(
        'SELECT object_name FROM session_blob WHERE kernel_session_id = $1 ORDER BY object_name',
        [session.id],
      );
      return rows.map((r) => r.object_name);
    }
  });
}

blobStoreSuite('Postgres', async (pool) => ({ objects: new PgObjectStore(pool), cleanup: async () => undefined }));

blobStoreSuite('a directory', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'resume-blobs-'));
  const objects = await FsObjectStore.open({ dir });
  return { objects, cleanup: () => rm(dir, { recursive: true, force: true }) };
});

blobStoreSuite('S3', async () => {
  const server = await startS3Server();
  const objects = await S3ObjectStore.open(s3StoreOptions(server, 'blob-store-suite/'));
  return {
    objects,
    cleanup: async () => {
      await objects.close();
      await server.stop();
    },
  };
});

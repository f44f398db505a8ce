/**
 * Incremental checkpoints in Postgres: a checkpoint that reuses blobs of an earlier checkpoint of
 * its session commits only when those blobs are really there, reads resolve to them, and a
 * referenced checkpoint cannot be deleted from under its users.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import type { Checkpoint, KernelRun, KernelSession, ReusedBlob, StoredBlob } from '../../../src/store/checkpoint-store.js';
import { PgBlobStore } from '../../../src/store/postgres/pg-blob-store.js';
import { PgCheckpointStore } from '../../../src/store/postgres/pg-checkpoint-store.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';

describe('incremental checkpoints in Postgres', () => {
  let postgres: StartedPostgres;
  let store: PgCheckpointStore;
  let blobs: PgBlobStore;
  let notebooks = 0;

  before(async () => {
    postgres = await startPostgres();
    store = new PgCheckpointStore(postgres.pool);
    blobs = new PgBlobStore(postgres.pool);
  });

  after(async () => {
    await postgres?.stop();
  });

  async function newRun(): Promise<{ session: KernelSession; run: KernelRun }> {
    const session = await store.upsertSession({ user: 'alice', server: '', notebookPath: `inc-${++notebooks}.ipynb`, kernelName: 'python3' });
    const run = await store.createRun({
      sessionId: session.id,
      kernelId: `kernel-${notebooks}`,
      serverUrl: 'http://127.0.0.1:41213/user/alice/',
      agentVersion: '0.1.0',
      restoredFromCheckpointId: null,
    });
    return { session, run };
  }

  /** Writes `written` (key → content) under a new checkpoint and commits it with `reused`. */
  async function checkpoint(
    target: { session: KernelSession; run: KernelRun },
    written: Record<string, string>,
    reused: ReusedBlob[] = [],
  ): Promise<{ id: string; stored: StoredBlob[]; commit: () => Promise<Checkpoint> }> {
    const { id } = await store.createCheckpoint({ sessionId: target.session.id, runId: target.run.id, trigger: 'cull' });
    const stored: StoredBlob[] = [];
    for (const [key, content] of Object.entries(written)) stored.push(await blobs.write(id, key, Readable.from([Buffer.from(content)])));
    const commit = () =>
      store.commitCheckpoint({ checkpointId: id, manifest: { checkpoint_id: id }, cells: [], blobs: stored, reused, restoreOnNextStart: true });
    return { id, stored, commit };
  }

  const reuse = (key: string, from: { id: string; stored: StoredBlob[] }, fromKey: string): ReusedBlob => {
    const blob = from.stored.find((b) => b.key === fromKey)!;
    return { key, bytes: blob.bytes, sha256: blob.sha256, storedIn: { checkpointId: from.id, key: fromKey } };
  };

  async function readAll(address: { checkpointId: string; key: string }): Promise<string> {
    const { body } = await blobs.read(address.checkpointId, address.key);
    const pieces: Buffer[] = [];
    for await (const piece of body) pieces.push(piece as Buffer);
    return Buffer.concat(pieces).toString();
  }

  it('commits a checkpoint that writes the changed group and references the unchanged one', async () => {
    const target = await newRun();
    const first = await checkpoint(target, { g0: 'big unchanged array', g1: 'counts v1' });
    await first.commit();
    const second = await checkpoint(target, { g1: 'counts v2' }, [reuse('g0', first, 'g0')]);
    const committed = await second.commit();

    assert.equal(committed.state, 'complete');
    assert.equal(committed.bytesStored, 'counts v2'.length);
    assert.equal(committed.bytesReused, 'big unchanged array'.length);
    assert.deepEqual(await store.blobAddress(second.id, 'g0'), { checkpointId: first.id, key: 'g0' });
    assert.deepEqual(await store.blobAddress(second.id, 'g1'), { checkpointId: second.id, key: 'g1' });
    assert.equal(await readAll(await store.blobAddress(second.id, 'g0')), 'big unchanged array');
    assert.equal(await readAll(await store.blobAddress(second.id, 'g1')), 'counts v2');
  });

  it('refuses references to another session, to a missing blob, to different bytes, or to a reference', async () => {
    const target = await newRun();
    const other = await newRun();
    const theirs = await checkpoint(other, { g0: 'not yours' });
    await theirs.commit();
    const first = await checkpoint(target, { g0: 'mine' });
    await first.commit();
    const second = await checkpoint(target, {}, [reuse('g0', first, 'g0')]);
    await second.commit();

    const attempts: Array<[string, ReusedBlob]> = [
      ['another session', reuse('g0', theirs, 'g0')],
      ['a missing blob', { ...reuse('g0', first, 'g0'), storedIn: { checkpointId: first.id, key: 'g9' } }],
      ['different bytes', { ...reuse('g0', first, 'g0'), sha256: 'f'.repeat(64) }],
      ['a reference', { ...reuse('g0', first, 'g0'), storedIn: { checkpointId: second.id, key: 'g0' } }],
      ['not an id', { ...reuse('g0', first, 'g0'), storedIn: { checkpointId: 'ck-1', key: 'g0' } }],
    ];
    for (const [what, reused] of attempts) {
      const attempt = await checkpoint(target, { g1: 'new' }, [reused]);
      await assert.rejects(attempt.commit(), (e: unknown) => {
        assert.ok(isResumeError(e), what);
        assert.equal(e.code, 'RESUME_ERR_CHECKPOINT_BLOB_MISMATCH', what);
        assert.match(e.message, /blob g0 refers to/, what);
        return true;
      });
      assert.equal((await store.getCheckpoint(attempt.id))?.state, 'writing', `${what}: nothing committed`);
    }
    assert.equal((await store.latestCompleteCheckpoint(target.session.id))?.id, second.id, 'the last good checkpoint stays');
  });

  it('keeps a referenced checkpoint from being deleted on its own, but deletes a whole session', async () => {
    const target = await newRun();
    const first = await checkpoint(target, { g0: 'kept' });
    await first.commit();
    const second = await checkpoint(target, {}, [reuse('g0', first, 'g0')]);
    await second.commit();

    await assert.rejects(postgres.pool.query('DELETE FROM checkpoint WHERE id = $1', [first.id]), /blob_reference/);
    assert.equal(await readAll(await store.blobAddress(second.id, 'g0')), 'kept');

    await postgres.pool.query('DELETE FROM kernel_session WHERE id = $1', [target.session.id]);
    assert.equal(await store.getCheckpoint(first.id), null);
    assert.equal(await store.getCheckpoint(second.id), null);
  });
});

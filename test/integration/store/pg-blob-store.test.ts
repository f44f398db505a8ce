import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { BLOB_CHUNK_BYTES, PgBlobStore } from '../../../src/store/postgres/pg-blob-store.js';
import { PgCheckpointStore } from '../../../src/store/postgres/pg-checkpoint-store.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';
import { waitFor } from '../../fixtures/wait-for.js';

const MiB = 1024 * 1024;

/** A stream of `total` random bytes in 64 KiB pieces, and the sha256 it will have. */
function randomStream(total: number): { body: Readable; sha256: Promise<string> } {
  const hash = createHash('sha256');
  let left = total;
  let resolveSha!: (s: string) => void;
  const sha256 = new Promise<string>((r) => (resolveSha = r));
  const body = new Readable({
    read() {
      if (left === 0) {
        resolveSha(hash.digest('hex'));
        this.push(null);
        return;
      }
      const piece = randomBytes(Math.min(64 * 1024, left));
      left -= piece.length;
      hash.update(piece);
      this.push(piece);
    },
  });
  return { body, sha256 };
}

/** A stream of `bytes`, then an error instead of its end. */
function failingStream(bytes: Buffer, error: Error): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes);
      } else {
        this.destroy(error);
      }
    },
  });
}

async function collect(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of body) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

describe('PgBlobStore', () => {
  let postgres: StartedPostgres;
  let checkpoints: PgCheckpointStore;
  let blobs: PgBlobStore;

  before(async () => {
    postgres = await startPostgres();
    checkpoints = new PgCheckpointStore(postgres.pool);
    blobs = new PgBlobStore(postgres.pool);
  });

  after(async () => {
    await postgres?.stop();
  });

  let notebooks = 0;
  async function writingCheckpoint(): Promise<string> {
    const session = await checkpoints.upsertSession({
      user: 'alice',
      server: '',
      notebookPath: `blob-${++notebooks}.ipynb`,
      kernelName: 'python3',
    });
    const run = await checkpoints.createRun({
      sessionId: session.id,
      kernelId: `k-${notebooks}`,
      serverUrl: 'http://127.0.0.1:1/user/alice/',
      agentVersion: '0.1.0',
      restoredFromCheckpointId: null,
    });
    return (await checkpoints.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'manual' })).id;
  }

  async function chunkCount(checkpointId: string): Promise<{ blobs: number; chunks: number; incomplete: number }> {
    const { rows } = await postgres.pool.query(
      `SELECT count(DISTINCT b.id)::int AS blobs, count(c.seq)::int AS chunks,
              count(DISTINCT b.id) FILTER (WHERE NOT b.complete)::int AS incomplete
       FROM blob b LEFT JOIN blob_chunk c ON c.blob_id = b.id WHERE b.checkpoint_id = $1`,
      [checkpointId],
    );
    return rows[0];
  }

  it('stores a 100 MB stream in 8 MiB chunks with its size and sha256, and streams the same bytes back', async () => {
    const checkpointId = await writingCheckpoint();
    const total = 100 * MiB;
    const { body, sha256 } = randomStream(total);

    const stored = await blobs.write(checkpointId, 'g0', body);

    assert.deepEqual(stored, { key: 'g0', bytes: total, sha256: await sha256 });
    assert.deepEqual(await blobs.stat(checkpointId, 'g0'), stored);
    assert.deepEqual(await chunkCount(checkpointId), { blobs: 1, chunks: Math.ceil(total / BLOB_CHUNK_BYTES), incomplete: 0 });

    const { blob, body: back } = await blobs.read(checkpointId, 'g0');
    assert.deepEqual(blob, stored);
    const hash = createHash('sha256');
    let bytes = 0;
    let largestPiece = 0;
    for await (const piece of back) {
      hash.update(piece as Buffer);
      bytes += (piece as Buffer).length;
      largestPiece = Math.max(largestPiece, (piece as Buffer).length);
    }
    assert.equal(bytes, total);
    assert.equal(hash.digest('hex'), stored.sha256);
    assert.ok(largestPiece <= BLOB_CHUNK_BYTES, `pieces of at most one chunk, got ${largestPiece}`);
  });

  it('reads with backpressure: one chunk ahead of a consumer that stopped reading', async () => {
    const chunkBytes = MiB;
    const small = new PgBlobStore(postgres.pool, { chunkBytes });
    const checkpointId = await writingCheckpoint();
    const data = randomBytes(6 * chunkBytes);
    await small.write(checkpointId, 'g1', Readable.from([data]));
    let checkouts = 0;
    const onAcquire = () => void checkouts++;
    postgres.pool.on('acquire', onAcquire);
    try {
      const { body } = await small.read(checkpointId, 'g1');
      const afterLookup = checkouts;
      const idle = () => postgres.pool.totalCount === postgres.pool.idleCount && postgres.pool.waitingCount === 0;

      body.pause();
      body.on('readable', () => undefined); // start fetching without consuming
      await waitFor('the first chunk to be buffered', () => body.readableLength > 0 && idle(), 10_000, 0);
      assert.equal(body.readableLength, chunkBytes, 'exactly one chunk buffered');
      assert.equal(checkouts - afterLookup, 1, 'one chunk fetched, nothing more');

      const first = body.read() as Buffer;
      assert.deepEqual(first, data.subarray(0, chunkBytes));
      await waitFor('the second chunk to be buffered', () => body.readableLength > 0 && idle(), 10_000, 0);
      assert.equal(body.readableLength, chunkBytes);
      assert.equal(checkouts - afterLookup, 2);

      body.removeAllListeners('readable');
      const rest = await collect(body);
      assert.deepEqual(Buffer.concat([first, rest]), data);
    } finally {
      postgres.pool.off('acquire', onAcquire);
    }
  });

  it('leaves nothing when the stream fails half way, and keeps the earlier blob of that key intact', async () => {
    const checkpointId = await writingCheckpoint();
    const earlier = randomBytes(3 * MiB);
    const first = await blobs.write(checkpointId, 'g0', Readable.from([earlier]));
    const before = await chunkCount(checkpointId);

    const broken = failingStream(randomBytes(BLOB_CHUNK_BYTES + 5 * MiB), new Error('client went away'));
    await assert.rejects(blobs.write(checkpointId, 'g0', broken), (e: unknown) => {
      assert.ok(isResumeError(e));
      assert.equal(e.code, 'RESUME_ERR_BLOB_UPLOAD_ABORTED');
      assert.equal(e.status, 400);
      return true;
    });

    assert.deepEqual(await blobs.stat(checkpointId, 'g0'), first);
    assert.deepEqual(await chunkCount(checkpointId), before, 'the failed attempt left no rows behind');
    const { body } = await blobs.read(checkpointId, 'g0');
    assert.deepEqual(await collect(body), earlier);
  });

  it('replaces a blob written again under the same key', async () => {
    const checkpointId = await writingCheckpoint();
    await blobs.write(checkpointId, 'g0', Readable.from([Buffer.from('old bytes')]));

    const second = await blobs.write(checkpointId, 'g0', Readable.from([Buffer.from('new '), Buffer.from('bytes')]));

    assert.equal(second.sha256, createHash('sha256').update('new bytes').digest('hex'));
    assert.deepEqual(await blobs.list(checkpointId), [second]);
    assert.deepEqual(await chunkCount(checkpointId), { blobs: 1, chunks: 1, incomplete: 0 });
    assert.equal((await collect((await blobs.read(checkpointId, 'g0')).body)).toString(), 'new bytes');
  });

  it('stores and reads back an empty blob', async () => {
    const checkpointId = await writingCheckpoint();
    const stored = await blobs.write(checkpointId, 'empty', Readable.from([]));
    assert.deepEqual(stored, { key: 'empty', bytes: 0, sha256: createHash('sha256').digest('hex') });
    assert.equal((await collect((await blobs.read(checkpointId, 'empty')).body)).length, 0);
  });

  it('refuses to change the blobs of a committed checkpoint', async () => {
    const checkpointId = await writingCheckpoint();
    const g0 = await blobs.write(checkpointId, 'g0', Readable.from([Buffer.from('kept')]));
    await checkpoints.commitCheckpoint({ checkpointId, manifest: { groups: [] }, cells: [], blobs: [g0], restoreOnNextStart: false });

    await assert.rejects(blobs.write(checkpointId, 'g0', Readable.from([Buffer.from('overwrite')])), {
      code: 'RESUME_ERR_CHECKPOINT_NOT_WRITING',
      status: 409,
    });
    assert.deepEqual(await blobs.stat(checkpointId, 'g0'), g0);
  });

  it('refuses a write to a checkpoint that does not exist, and a key outside [a-z0-9-]', async () => {
    await assert.rejects(blobs.write('00000000-0000-4000-8000-000000000000', 'g0', Readable.from([Buffer.from('x')])), {
      code: 'RESUME_ERR_CHECKPOINT_NOT_FOUND',
      status: 404,
    });
    const checkpointId = await writingCheckpoint();
    await assert.rejects(blobs.write(checkpointId, '../etc/passwd', Readable.from([Buffer.from('x')])), {
      code: 'RESUME_ERR_BLOB_KEY_INVALID',
      status: 400,
    });
  });

  it('answers RESUME_ERR_BLOB_NOT_FOUND for a blob that was never stored', async () => {
    const checkpointId = await writingCheckpoint();
    await assert.rejects(blobs.read(checkpointId, 'g9'), { code: 'RESUME_ERR_BLOB_NOT_FOUND', status: 404 });
    assert.equal(await blobs.stat(checkpointId, 'g9'), null);
    assert.equal(await blobs.stat('not-a-uuid', 'g9'), null);
  });

  it('lists the complete blobs of a checkpoint and deletes them all', async () => {
    const checkpointId = await writingCheckpoint();
    const b = await blobs.write(checkpointId, 'b', Readable.from([Buffer.from('bb')]));
    const a = await blobs.write(checkpointId, 'a', Readable.from([Buffer.from('a')]));
    assert.deepEqual(await blobs.list(checkpointId), [a, b]);

    await blobs.deleteCheckpointBlobs(checkpointId);

    assert.deepEqual(await blobs.list(checkpointId), []);
    assert.deepEqual(await chunkCount(checkpointId), { blobs: 0, chunks: 0, incomplete: 0 });
  });

  it('measures its write and read bandwidth with a probe it leaves no trace of', async () => {
    const measured = await blobs.measureBandwidth(16 * 1024 * 1024);
    for (const value of [measured.writeBytesPerS, measured.readBytesPerS]) {
      assert.ok(Number.isFinite(value) && value > 0, `a bandwidth, not ${value}`);
    }
    const { rows } = await postgres.pool.query('SELECT count(*)::int AS n FROM blob_bandwidth_probe');
    assert.equal((rows[0] as { n: number }).n, 0);
  });
});

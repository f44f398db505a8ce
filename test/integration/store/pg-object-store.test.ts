import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { objectStoreContract } from './object-store-contract.js';
import { OBJECT_CHUNK_BYTES, PgObjectStore } from '../../../src/store/postgres/pg-object-store.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';
import { waitFor } from '../../fixtures/wait-for.js';
import { collect, failingStream, randomStream } from '../../fixtures/byte-streams.js';

const MiB = 1024 * 1024;

objectStoreContract('PgObjectStore', async () => {
  const postgres = await startPostgres();
  return { store: new PgObjectStore(postgres.pool), cleanup: () => postgres.stop() };
});

describe('PgObjectStore in Postgres rows', () => {
  let postgres: StartedPostgres;
  let objects: PgObjectStore;

  before(async () => {
    postgres = await startPostgres();
    objects = new PgObjectStore(postgres.pool);
  });

  after(async () => {
    await postgres?.stop();
  });

  async function rowsOf(name: string): Promise<{ objects: number; chunks: number; incomplete: number }> {
    const { rows } = await postgres.pool.query(
      `SELECT count(DISTINCT o.id)::int AS objects, count(c.seq)::int AS chunks,
              count(DISTINCT o.id) FILTER (WHERE NOT o.complete)::int AS incomplete
       FROM blob_object o LEFT JOIN blob_object_chunk c ON c.object_id = o.id WHERE o.name = $1`,
      [name],
    );
    return rows[0];
  }

  it('stores a 100 MB stream in 8 MiB chunk rows and streams it back one chunk at a time', async () => {
    const total = 100 * MiB;
    const { body, sha256 } = randomStream(total);

    const written = await objects.put('sessions/big/one', body);

    assert.deepEqual(written, { name: 'sessions/big/one', bytes: total, sha256: await sha256 });
    assert.deepEqual(await rowsOf('sessions/big/one'), { objects: 1, chunks: Math.ceil(total / OBJECT_CHUNK_BYTES), incomplete: 0 });
    const back = await objects.get('sessions/big/one');
    assert.equal(back.bytes, total);
    const hash = createHash('sha256');
    let largestPiece = 0;
    for await (const piece of back.body) {
      hash.update(piece as Buffer);
      largestPiece = Math.max(largestPiece, (piece as Buffer).length);
    }
    assert.equal(hash.digest('hex'), written.sha256);
    assert.ok(largestPiece <= OBJECT_CHUNK_BYTES, `pieces of at most one chunk, got ${largestPiece}`);
  });

  it('reads with backpressure: one chunk ahead of a consumer that stopped reading', async () => {
    const chunkBytes = MiB;
    const small = new PgObjectStore(postgres.pool, { chunkBytes });
    const data = randomBytes(6 * chunkBytes);
    await small.put('sessions/slow/reader', Readable.from([data]));
    let checkouts = 0;
    const onAcquire = () => void checkouts++;
    postgres.pool.on('acquire', onAcquire);
    try {
      const { body } = await small.get('sessions/slow/reader');
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

  it('removes every row of a write that fails half way', async () => {
    const broken = failingStream(randomBytes(OBJECT_CHUNK_BYTES + 5 * MiB), new Error('client went away'));
    await assert.rejects(objects.put('sessions/broken/one', broken), (e: unknown) => {
      assert.ok(isResumeError(e));
      assert.equal(e.code, 'RESUME_ERR_BLOB_UPLOAD_ABORTED');
      return true;
    });
    assert.deepEqual(await rowsOf('sessions/broken/one'), { objects: 0, chunks: 0, incomplete: 0 });
  });

  it('sweeps the incomplete rows a crashed writer left, and only those older than asked', async () => {
    // What a service killed mid-upload leaves: an incomplete row with chunks.
    const { rows } = await postgres.pool.query<{ id: string }>(
      "INSERT INTO blob_object (name, created_at) VALUES ('sessions/crashed/one', now() - interval '1 hour') RETURNING id",
    );
    await postgres.pool.query("INSERT INTO blob_object_chunk (object_id, seq, data) VALUES ($1, 0, '\\x00')", [rows[0]?.id]);
    await postgres.pool.query("INSERT INTO blob_object (name) VALUES ('sessions/in-flight/one')");

    assert.equal(await objects.sweepIncomplete(new Date(Date.now() - 60_000)), 1);

    assert.deepEqual(await rowsOf('sessions/crashed/one'), { objects: 0, chunks: 0, incomplete: 0 });
    assert.deepEqual(await rowsOf('sessions/in-flight/one'), { objects: 1, chunks: 0, incomplete: 1 }, 'a write in progress is left alone');
  });
});

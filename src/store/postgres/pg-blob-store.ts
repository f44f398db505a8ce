/**
 * BlobStore in Postgres: each blob is a row of `blob` plus its bytes in 8 MiB `blob_chunk` rows.
 *
 * Writing inserts each chunk as soon as it fills (autocommit), so memory stays at one chunk
 * whatever the blob's size; the `blob` row becomes complete, with its size and sha256, in one
 * transaction that also removes the earlier blob of that key. Until then nothing is visible, and a
 * write that fails removes what it wrote (or, if the database is gone, leaves an incomplete row
 * that no reader sees).
 *
 * Reading fetches one chunk per statement, only when the consumer wants more, through binary
 * COPY (see bytea-copy-query.ts), so a 1 GB blob is never in memory at once.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import pg from 'pg';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BlobStore, StoredBlob } from '../checkpoint-store.js';
import { copyBytea } from './bytea-copy-query.js';
import { mapPgError } from './map-pg-error.js';
import { withClient, withTransaction } from './pool.js';
import { isUuid, toStoredBlob } from './row-schemas.js';
import { checkpointNotFound, checkpointNotWriting } from './store-errors.js';

/** Bytes per `blob_chunk` row. */
export const BLOB_CHUNK_BYTES = 8 * 1024 * 1024;

/** The key syntax of the agent protocol. */
const BLOB_KEY = /^[a-z0-9-]{1,64}$/;

/** First half of the two-int advisory lock key that serialises completing blobs of one key. */
const BLOB_LOCK_CLASS = 0x626c6f62; // "blob"

export type PgBlobStoreOptions = {
  logger?: Logger;
  /** Bytes per chunk row (default 8 MiB); smaller in tests that count chunks. */
  chunkBytes?: number;
};

/** A blob's row id and size, as read needs them. */
type BlobLocation = { id: string; blob: StoredBlob };

/** Postgres implementation of BlobStore (the default store of checkpoint bytes). */
export class PgBlobStore implements BlobStore {
  private readonly pool: pg.Pool;
  private readonly logger: Logger | undefined;
  private readonly chunkBytes: number;

  /**
   * @param pool a pool on a database migrated with `migrate()`.
   * @param options.chunkBytes bytes per chunk row; @param options.logger debug lines per blob.
   */
  constructor(pool: pg.Pool, options: PgBlobStoreOptions = {}) {
    this.pool = pool;
    this.logger = options.logger;
    this.chunkBytes = options.chunkBytes ?? BLOB_CHUNK_BYTES;
  }

  /**
   * Streams `body` into blob `key` of a checkpoint that is still `writing`.
   *
   * On failure the body is left as it is (paused, not destroyed), so an HTTP handler can still
   * answer the request; it decides whether to drain or drop the rest.
   * @throws ResumeError RESUME_ERR_BLOB_KEY_INVALID (400), RESUME_ERR_CHECKPOINT_NOT_FOUND (404),
   *   RESUME_ERR_CHECKPOINT_NOT_WRITING (409: a committed or failed checkpoint never changes),
   *   RESUME_ERR_BLOB_UPLOAD_ABORTED (400: the body stream failed), RESUME_ERR_STORE_UNAVAILABLE (503).
   */
  async write(checkpointId: string, key: string, body: Readable): Promise<StoredBlob> {
    if (!BLOB_KEY.test(key)) {
      throw new ResumeError('RESUME_ERR_BLOB_KEY_INVALID', `blob key ${JSON.stringify(key)} is not [a-z0-9-]{1,64}`, {
        status: 400,
        hint: 'Use the group keys of the manifest (e.g. g0, g1).',
        context: { checkpointId },
      });
    }
    const context = { checkpointId, key };
    const blobId = await this.beginBlob(checkpointId, key);
    try {
      const { bytes, sha256 } = await this.writeChunks(blobId, body, context);
      await this.completeBlob(checkpointId, key, blobId, bytes, sha256);
      this.logger?.debug({ ...context, bytes }, 'blob stored');
      return { key, bytes, sha256 };
    } catch (err) {
      await this.discardBlob(blobId, context);
      throw mapPgError(err, context);
    }
  }

  /**
   * Streams a complete blob back, one chunk per query, fetching the next chunk only when the
   * consumer has taken the previous one. Destroy the body if you stop reading early.
   * @throws ResumeError RESUME_ERR_BLOB_NOT_FOUND (404); the body fails with
   *   RESUME_ERR_BLOB_CHANGED if the blob is replaced or deleted while it is being read.
   */
  async read(checkpointId: string, key: string): Promise<{ blob: StoredBlob; body: Readable }> {
    const location = await this.locate(checkpointId, key);
    if (location === null) {
      throw new ResumeError('RESUME_ERR_BLOB_NOT_FOUND', `checkpoint ${checkpointId} has no blob ${JSON.stringify(key)}`, {
        status: 404,
        hint: 'The checkpoint was deleted or never finished storing this blob; the variables in it cannot be loaded from this checkpoint.',
        context: { checkpointId, key },
      });
    }
    const body = Readable.from(this.chunksOf(location, { checkpointId, key }), { objectMode: false });
    return { blob: location.blob, body };
  }

  /** Size and checksum of a complete blob, or null. */
  async stat(checkpointId: string, key: string): Promise<StoredBlob | null> {
    return (await this.locate(checkpointId, key))?.blob ?? null;
  }

  /** The complete blobs of a checkpoint, by key. */
  async list(checkpointId: string): Promise<StoredBlob[]> {
    if (!isUuid(checkpointId)) return [];
    return this.run({ checkpointId }, async (client) => {
      const { rows } = await client.query(
        'SELECT key, bytes, sha256 FROM blob WHERE checkpoint_id = $1 AND complete ORDER BY key',
        [checkpointId],
      );
      return rows.map(toStoredBlob);
    });
  }

  /**
   * Writes `bytes` of random data in chunk rows like blobs' (table `blob_bandwidth_probe`: same
   * storage settings, logged like `blob_chunk`), reads them back through the same binary COPY,
   * deletes them, and answers what that took.
   * @throws ResumeError RESUME_ERR_STORE_UNAVAILABLE (503) when Postgres is unreachable.
   */
  async measureBandwidth(bytes: number): Promise<{ writeBytesPerS: number; readBytesPerS: number }> {
    const probeId = randomUUID();
    const chunks = Math.max(1, Math.ceil(bytes / this.chunkBytes));
    const chunk = randomBytes(this.chunkBytes); // incompressible, like pickled arrays
    try {
      return await withClient(this.pool, async (client) => {
        const t0 = performance.now();
        for (let seq = 0; seq < chunks; seq++) {
          await client.query('INSERT INTO blob_bandwidth_probe (probe_id, seq, data) VALUES ($1, $2, $3)', [probeId, seq, chunk]);
        }
        const t1 = performance.now();
        for (let seq = 0; seq < chunks; seq++) {
          await copyBytea(
            client,
            `COPY (SELECT data FROM blob_bandwidth_probe WHERE probe_id = ${pg.escapeLiteral(probeId)} AND seq = ${seq}) TO STDOUT (FORMAT binary)`,
          );
        }
        const t2 = performance.now();
        await client.query('DELETE FROM blob_bandwidth_probe WHERE probe_id = $1', [probeId]);
        const total = chunks * this.chunkBytes;
        return { writeBytesPerS: total / ((t1 - t0) / 1000), readBytesPerS: total / ((t2 - t1) / 1000) };
      });
    } catch (err) {
      throw mapPgError(err, { probeId });
    }
  }

  /** Deletes every blob of a checkpoint, complete or still being written (their writers then fail). */
  async deleteCheckpointBlobs(checkpointId: string): Promise<void> {
    if (!isUuid(checkpointId)) return;
    await this.run({ checkpointId }, (client) => client.query('DELETE FROM blob WHERE checkpoint_id = $1', [checkpointId]));
  }

  /** Inserts the incomplete `blob` row this write fills, if the checkpoint accepts blobs. */
  private async beginBlob(checkpointId: string, key: string): Promise<string> {
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    return this.run({ checkpointId, key }, async (client) => {
      const inserted = await client.query<{ id: string }>(
        `INSERT INTO blob (checkpoint_id, key)
         SELECT id, $2 FROM checkpoint WHERE id = $1 AND state = 'writing'
         RETURNING id`,
        [checkpointId, key],
      );
      const id = inserted.rows[0]?.id;
      if (id !== undefined) return id;
      const { rows } = await client.query<{ state: string }>('SELECT state FROM checkpoint WHERE id = $1', [checkpointId]);
      throw rows[0] === undefined ? checkpointNotFound(checkpointId) : checkpointNotWriting(checkpointId, rows[0].state);
    });
  }

  /** Consumes the body, hashing it and inserting a chunk row each time one fills. */
  private async writeChunks(
    blobId: string,
    body: Readable,
    context: { checkpointId: string; key: string },
  ): Promise<{ bytes: number; sha256: string }> {
    const hash = createHash('sha256');
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    let bytes = 0;
    let seq = 0;
    // destroyOnReturn: false — a database failure must not destroy the caller's request stream.
    const pieces = body.iterator({ destroyOnReturn: false });
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await pieces.next();
      } catch (cause) {
        throw new ResumeError('RESUME_ERR_BLOB_UPLOAD_ABORTED', 'the blob upload stream failed before its end', {
          status: 400,
          hint: 'Upload the blob again; nothing of this attempt was kept.',
          context,
          cause,
        });
      }
      if (next.done === true) break;
      const piece = toBuffer(next.value);
      hash.update(piece);
      bytes += piece.length;
      pending.push(piece);
      pendingBytes += piece.length;
      while (pendingBytes >= this.chunkBytes) {
        await this.insertChunk(blobId, seq++, takeBytes(pending, this.chunkBytes), context);
        pendingBytes -= this.chunkBytes;
      }
    }
    if (pendingBytes > 0) await this.insertChunk(blobId, seq, takeBytes(pending, pendingBytes), context);
    return { bytes, sha256: hash.digest('hex') };
  }

  private async insertChunk(blobId: string, seq: number, data: Buffer, context: { checkpointId: string; key: string }): Promise<void> {
    // pg sends a Buffer parameter in binary format: no hex encoding on the way in.
    await this.run(context, (client) =>
      client.query('INSERT INTO blob_chunk (blob_id, seq, data) VALUES ($1, $2, $3)', [blobId, seq, data]),
    );
  }

  /** Makes the written blob the visible one of its key, in one transaction. */
  private async completeBlob(checkpointId: string, key: string, blobId: string, bytes: number, sha256: string): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      // Two writers of one key finishing at once would both pass the checks below; take turns.
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [BLOB_LOCK_CLASS, `${checkpointId}/${key}`]);
      // FOR SHARE waits for a commit in progress (it locks the row FOR NO KEY UPDATE) and sees its outcome.
      const { rows } = await client.query<{ state: string }>('SELECT state FROM checkpoint WHERE id = $1 FOR SHARE', [checkpointId]);
      if (rows[0] === undefined) throw checkpointNotFound(checkpointId);
      if (rows[0].state !== 'writing') throw checkpointNotWriting(checkpointId, rows[0].state);
      await client.query('DELETE FROM blob WHERE checkpoint_id = $1 AND key = $2 AND complete', [checkpointId, key]);
      const updated = await client.query(
        `UPDATE blob SET complete = true, bytes = $2, sha256 = $3, completed_at = clock_timestamp()
         WHERE id = $1 AND NOT complete`,
        [blobId, bytes, sha256],
      );
      // deleteCheckpointBlobs removed the attempt while it streamed.
      if (updated.rowCount !== 1) throw blobChanged(checkpointId, key);
    });
  }

  /** Best effort: removes a failed attempt (its chunks go with it). */
  private async discardBlob(blobId: string, context: { checkpointId: string; key: string }): Promise<void> {
    try {
      await withClient(this.pool, (client) => client.query('DELETE FROM blob WHERE id = $1', [blobId]));
    } catch (err) {
      // Unreachable database: the incomplete row stays, invisible to readers, until its checkpoint is deleted.
      this.logger?.warn({ ...context, reason: err instanceof Error ? err.message : String(err) }, 'could not remove a failed blob write');
    }
  }

  private async locate(checkpointId: string, key: string): Promise<BlobLocation | null> {
    if (!isUuid(checkpointId) || !BLOB_KEY.test(key)) return null;
    return this.run({ checkpointId, key }, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        'SELECT id, key, bytes, sha256 FROM blob WHERE checkpoint_id = $1 AND key = $2 AND complete',
        [checkpointId, key],
      );
      const row = rows[0];
      return row === undefined ? null : { id: row.id, blob: toStoredBlob(row) };
    });
  }

  /** Yields the chunks of a blob in order; each is fetched when the stream asks for more. */
  private async *chunksOf(location: BlobLocation, context: { checkpointId: string; key: string }): AsyncGenerator<Buffer> {
    let sent = 0;
    for (let seq = 0; sent < location.blob.bytes; seq++) {
      // Literals are safe here: the id is a UUID from our own row and seq an integer.
      const text = `COPY (SELECT data FROM blob_chunk WHERE blob_id = ${pg.escapeLiteral(location.id)} AND seq = ${seq}) TO STDOUT (FORMAT binary)`;
      const chunk = await this.run(context, (client) => copyBytea(client, text));
      if (chunk === null || sent + chunk.length > location.blob.bytes) throw blobChanged(context.checkpointId, context.key);
      sent += chunk.length;
      yield chunk;
    }
  }

  /** withClient plus the generic SQLSTATE mapping. */
  private async run<T>(context: { checkpointId: string; key?: string }, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await withClient(this.pool, work);
    } catch (err) {
      throw mapPgError(err, context);
    }
  }
}

/** Removes exactly `n` bytes from the front of `pending` (n ≤ their total), copying each byte once. */
function takeBytes(pending: Buffer[], n: number): Buffer {
  const first = pending[0];
  if (first !== undefined && first.length === n) {
    pending.shift();
    return first;
  }
  const out = Buffer.allocUnsafe(n);
  let filled = 0;
  while (filled < n) {
    const piece = pending[0] as Buffer;
    const take = Math.min(piece.length, n - filled);
    piece.copy(out, filled, 0, take);
    filled += take;
    if (take === piece.length) pending.shift();
    else pending[0] = piece.subarray(take);
  }
  return out;
}

function toBuffer(value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  throw new ResumeError('RESUME_ERR_BLOB_UPLOAD_ABORTED', 'the blob upload stream produced something other than bytes', {
    status: 400,
    hint: 'Send the blob as a byte stream (application/octet-stream).',
  });
}

function blobChanged(checkpointId: string, key: string): ResumeError {
  return new ResumeError('RESUME_ERR_BLOB_CHANGED', `blob ${key} of checkpoint ${checkpointId} was replaced or deleted meanwhile`, {
    status: 409,
    hint: 'Read it again (or upload it again); the checkpoint may have been deleted.',
    context: { checkpointId, key },
  });
}

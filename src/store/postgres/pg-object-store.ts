/**
 * ObjectStore in Postgres (the default): each object is a `blob_object` row plus its bytes in
 * 8 MiB `blob_object_chunk` rows.
 *
 * Writing inserts each chunk as soon as it fills (autocommit), so memory stays at one chunk
 * whatever the object's size; the row becomes complete, with its size and sha256, in one
 * transaction. Until then nothing is visible, and a write that fails removes what it wrote (or,
 * if the database is gone, leaves an incomplete row that no reader sees and `sweepIncomplete`
 * removes).
 *
 * Reading fetches one chunk per statement, only when the consumer wants more, through binary
 * COPY (see bytea-copy-query.ts), so a 1 GB object is never in memory at once.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pg from 'pg';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { bodyPieces } from '../upload-body.js';
import { assertObjectName, objectNotFound, type ObjectInfo, type ObjectStore, type WrittenObject } from '../object-store.js';
import { copyBytea } from './bytea-copy-query.js';
import { mapPgError } from './map-pg-error.js';
import { withClient, withTransaction } from './pool.js';

/** Bytes per `blob_object_chunk` row. */
export const OBJECT_CHUNK_BYTES = 8 * 1024 * 1024;

/** Objects listed per query. */
const LIST_PAGE = 1000;

export type PgObjectStoreOptions = {
  logger?: Logger;
  /** Bytes per chunk row (default 8 MiB); smaller in tests that count chunks. */
  chunkBytes?: number;
};

/** An object's row id and size, as read needs them. */
type ObjectLocation = { id: string; bytes: number };

export class PgObjectStore implements ObjectStore {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly logger: Logger | undefined;
  private readonly chunkBytes: number;

  /** @param pool a pool on a database migrated with `migrate()` (the store does not end it). */
  constructor(pool: pg.Pool, options: PgObjectStoreOptions = {}) {
    this.pool = pool;
    this.logger = options.logger;
    this.chunkBytes = options.chunkBytes ?? OBJECT_CHUNK_BYTES;
  }

  async put(name: string, body: Readable): Promise<WrittenObject> {
    assertObjectName(name);
    const context = { object: name };
    const objectId = await this.run(context, async (client) => {
      const { rows } = await client.query<{ id: string }>('INSERT INTO blob_object (name) VALUES ($1) RETURNING id', [name]);
      return (rows[0] as { id: string }).id;
    });
    try {
      const { bytes, sha256 } = await this.writeChunks(objectId, body, context);
      await withTransaction(this.pool, async (client) => {
        // Names are written once, but a retried write after a lost reply must still end with one object.
        await client.query('DELETE FROM blob_object WHERE name = $1 AND complete', [name]);
        await client.query(
          `UPDATE blob_object SET complete = true, bytes = $2, sha256 = $3, completed_at = clock_timestamp() WHERE id = $1`,
          [objectId, bytes, sha256],
        );
      });
      this.logger?.debug({ ...context, bytes }, 'object stored');
      return { name, bytes, sha256 };
    } catch (err) {
      await this.discard(objectId, context);
      throw mapPgError(err, context);
    }
  }

  async get(name: string): Promise<{ bytes: number; body: Readable }> {
    assertObjectName(name);
    const location = await this.run({ object: name }, async (client) => {
      const { rows } = await client.query<{ id: string; bytes: string }>(
        'SELECT id, bytes FROM blob_object WHERE name = $1 AND complete',
        [name],
      );
      const row = rows[0];
      return row === undefined ? null : { id: row.id, bytes: Number(row.bytes) };
    });
    if (location === null) throw objectNotFound(name);
    return { bytes: location.bytes, body: Readable.from(this.chunksOf(location, name), { objectMode: false }) };
  }

  async delete(name: string): Promise<void> {
    assertObjectName(name);
    await this.run({ object: name }, (client) => client.query('DELETE FROM blob_object WHERE name = $1', [name]));
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    let after = '';
    for (;;) {
      // Keyset pages in name order (COLLATE "C": byte order, as the other stores list).
      const { rows } = await this.run({ prefix }, (client) =>
        client.query<{ name: string; bytes: string; completed_at: Date }>(
          `SELECT name, bytes, completed_at FROM blob_object
           WHERE complete AND starts_with(name, $1) AND name COLLATE "C" > $2
           ORDER BY name COLLATE "C" LIMIT ${LIST_PAGE}`,
          [prefix, after],
        ),
      );
      for (const row of rows) yield { name: row.name, bytes: Number(row.bytes), modifiedAt: row.completed_at };
      if (rows.length < LIST_PAGE) return;
      after = (rows[rows.length - 1] as { name: string }).name;
    }
  }

  async sweepIncomplete(startedBefore: Date): Promise<number> {
    const { rowCount } = await this.run({}, (client) =>
      client.query('DELETE FROM blob_object WHERE NOT complete AND created_at < $1', [startedBefore]),
    );
    return rowCount ?? 0;
  }

  async close(): Promise<void> {
    // The pool belongs to the caller.
  }

  /** Consumes the body, hashing it and inserting a chunk row each time one fills. */
  private async writeChunks(objectId: string, body: Readable, context: { object: string }): Promise<{ bytes: number; sha256: string }> {
    const hash = createHash('sha256');
    let bytes = 0;
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    let seq = 0;
    // bodyPieces never destroys the caller's request stream, whatever fails.
    for await (const piece of bodyPieces(body, context)) {
      hash.update(piece);
      bytes += piece.length;
      pending.push(piece);
      pendingBytes += piece.length;
      while (pendingBytes >= this.chunkBytes) {
        await this.insertChunk(objectId, seq++, takeBytes(pending, this.chunkBytes), context);
        pendingBytes -= this.chunkBytes;
      }
    }
    if (pendingBytes > 0) await this.insertChunk(objectId, seq, takeBytes(pending, pendingBytes), context);
    return { bytes, sha256: hash.digest('hex') };
  }

  private async insertChunk(objectId: string, seq: number, data: Buffer, context: { object: string }): Promise<void> {
    // pg sends a Buffer parameter in binary format: no hex encoding on the way in.
    await this.run(context, (client) =>
      client.query('INSERT INTO blob_object_chunk (object_id, seq, data) VALUES ($1, $2, $3)', [objectId, seq, data]),
    );
  }

  /** Best effort: removes a failed attempt (its chunks go with it). */
  private async discard(objectId: string, context: { object: string }): Promise<void> {
    try {
      await withClient(this.pool, (client) => client.query('DELETE FROM blob_object WHERE id = $1', [objectId]));
    } catch (err) {
      // Unreachable database: the incomplete row stays, invisible to readers, until sweepIncomplete.
      this.logger?.warn({ ...context, reason: err instanceof Error ? err.message : String(err) }, 'could not remove a failed object write');
    }
  }

  /** Yields the chunks of an object in order; each is fetched when the stream asks for more. */
  private async *chunksOf(location: ObjectLocation, name: string): AsyncGenerator<Buffer> {
    let sent = 0;
    for (let seq = 0; sent < location.bytes; seq++) {
      // Literals are safe here: the id is a UUID from our own row and seq an integer.
      const text = `COPY (SELECT data FROM blob_object_chunk WHERE object_id = ${pg.escapeLiteral(location.id)} AND seq = ${seq}) TO STDOUT (FORMAT binary)`;
      const chunk = await this.run({ object: name }, (client) => copyBytea(client, text));
      if (chunk === null || sent + chunk.length > location.bytes) throw objectChanged(name);
      sent += chunk.length;
      yield chunk;
    }
  }

  /** withClient plus the generic SQLSTATE mapping. */
  private async run<T>(context: Record<string, unknown>, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
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

function objectChanged(name: string): ResumeError {
  return new ResumeError('RESUME_ERR_BLOB_CHANGED', `object ${name} was deleted while it was being read`, {
    status: 409,
    hint: 'Read it again; the checkpoint may have been deleted meanwhile.',
    context: { object: name },
  });
}

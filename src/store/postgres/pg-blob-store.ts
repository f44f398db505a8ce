/**
 * BlobStore with its catalog in Postgres and its bytes in any ObjectStore.
 *
 * A blob is a session's content (`session_blob`, keyed by sha256); a checkpoint lists it under a
 * group key (`checkpoint_blob`). Writing streams the bytes to a fresh object first and catalogs it
 * afterwards, in one transaction; an upload row (`blob_upload`) exists for the whole write, so
 * garbage collection can tell an object in flight from one a crash left behind.
 *
 * Lock order (as in checkpoint-transitions.ts): the session row, then checkpoint rows. Cataloguing
 * an upload takes the session row FOR SHARE and garbage collection FOR NO KEY UPDATE, so a blob
 * is never collected between "this content is already here" and "this checkpoint lists it";
 * commits hold the session row too.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { ResumeError, type ErrorContext } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BlobStore, GarbageReport, StoredBlob } from '../checkpoint-store.js';
import type { ObjectInfo, ObjectStore } from '../object-store.js';
import { mapPgError } from './map-pg-error.js';
import { withClient, withTransaction } from './pool.js';
import { isUuid, toStoredBlob } from './row-schemas.js';
import { checkpointNotFound, checkpointNotWriting } from './store-errors.js';

/** The key syntax of the agent protocol. */
const BLOB_KEY = /^[a-z0-9-]{1,64}$/;

/** Bandwidth probes older than this are garbage even if their prober may still be alive. */
const PROBE_GRACE_MS = 60 * 60 * 1000;

export type PgBlobStoreOptions = { logger?: Logger };

export class PgBlobStore implements BlobStore {
  readonly objects: ObjectStore;
  private readonly pool: pg.Pool;
  private readonly logger: Logger | undefined;

  /**
   * @param pool a pool on a database migrated with `migrate()`: the catalog.
   * @param objects where the bytes go.
   */
  constructor(pool: pg.Pool, objects: ObjectStore, options: PgBlobStoreOptions = {}) {
    this.pool = pool;
    this.objects = objects;
    this.logger = options.logger;
  }

  async write(checkpointId: string, key: string, body: Readable): Promise<StoredBlob> {
    if (!BLOB_KEY.test(key)) {
      throw new ResumeError('RESUME_ERR_BLOB_KEY_INVALID', `blob key ${JSON.stringify(key)} is not [a-z0-9-]{1,64}`, {
        status: 400,
        hint: 'Use the group keys of the manifest (e.g. g0, g1).',
        context: { checkpointId },
      });
    }
    const context = { checkpointId, key };
    const { sessionId, objectName } = await this.beginUpload(checkpointId, key);
    let written;
    try {
      written = await this.objects.put(objectName, body);
    } catch (err) {
      await this.forgetUpload(objectName, context);
      throw err;
    }
    let duplicate: boolean;
    try {
      duplicate = await this.catalog(checkpointId, key, sessionId, written);
    } catch (err) {
      await this.deleteObject(objectName, context);
      await this.forgetUpload(objectName, context);
      throw mapPgError(err, context);
    }
    // The session already held these bytes: the catalog lists the earlier object, this one goes.
    if (duplicate) await this.deleteObject(objectName, context);
    this.logger?.debug({ ...context, bytes: written.bytes, duplicate }, 'blob stored');
    return { key, bytes: written.bytes, sha256: written.sha256 };
  }

  async read(checkpointId: string, key: string): Promise<{ blob: StoredBlob; body: Readable }> {
    const found = await this.locate(checkpointId, key);
    if (found === null) {
      throw new ResumeError('RESUME_ERR_BLOB_NOT_FOUND', `checkpoint ${checkpointId} has no blob ${JSON.stringify(key)}`, {
        status: 404,
        hint: 'The checkpoint was deleted or never finished storing this blob; the variables in it cannot be loaded from this checkpoint.',
        context: { checkpointId, key },
      });
    }
    const { body } = await this.objects.get(found.objectName);
    return { blob: found.blob, body };
  }

  async stat(checkpointId: string, key: string): Promise<StoredBlob | null> {
    return (await this.locate(checkpointId, key))?.blob ?? null;
  }

  async list(checkpointId: string): Promise<StoredBlob[]> {
    if (!isUuid(checkpointId)) return [];
    return this.run({ checkpointId }, async (client) => {
      const { rows } = await client.query(
        `SELECT cb.key, sb.bytes, sb.sha256 FROM checkpoint_blob cb
         JOIN session_blob sb USING (kernel_session_id, sha256)
         WHERE cb.checkpoint_id = $1 ORDER BY cb.key`,
        [checkpointId],
      );
      return rows.map(toStoredBlob);
    });
  }

  async deleteCheckpointBlobs(checkpointId: string): Promise<void> {
    if (!isUuid(checkpointId)) return;
    // Never a complete checkpoint's: a commit whose reply was lost may look failed to its caller.
    await this.run({ checkpointId }, (client) =>
      client.query(
        `DELETE FROM checkpoint_blob WHERE checkpoint_id = $1
           AND NOT EXISTS (SELECT 1 FROM checkpoint WHERE id = $1 AND state = 'complete')`,
        [checkpointId],
      ),
    );
  }

  async usage(user: string): Promise<number> {
    return this.run({ user }, async (client) => usedBytes(client, user));
  }

  async collectGarbage(options: { abandonedAfterS: number; now?: Date }): Promise<GarbageReport> {
    const now = options.now ?? new Date();
    const abandonedBefore = new Date(now.getTime() - options.abandonedAfterS * 1000);
    const report: GarbageReport = { blobs: 0, bytes: 0, orphanObjects: 0, incompleteWrites: 0 };

    // 1. Blobs nothing lists: one session at a time, holding its row against a concurrent upload
    //    that is about to list one of them again.
    const sessions = await this.run({}, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT DISTINCT sb.kernel_session_id AS id FROM session_blob sb
         WHERE NOT EXISTS (SELECT 1 FROM checkpoint_blob cb
                           WHERE cb.kernel_session_id = sb.kernel_session_id AND cb.sha256 = sb.sha256)`,
      );
      return rows.map((r) => r.id);
    });
    for (const sessionId of sessions) {
      const dropped = await this.transaction({ sessionId }, async (client) => {
        await client.query('SELECT 1 FROM kernel_session WHERE id = $1 FOR NO KEY UPDATE', [sessionId]);
        const { rows } = await client.query<{ object_name: string; bytes: string }>(
          `DELETE FROM session_blob sb WHERE sb.kernel_session_id = $1
             AND NOT EXISTS (SELECT 1 FROM checkpoint_blob cb WHERE cb.kernel_session_id = sb.kernel_session_id AND cb.sha256 = sb.sha256)
           RETURNING object_name, bytes`,
          [sessionId],
        );
        return rows;
      });
      // After the commit: an object whose delete fails now is an orphan, and step 2 retries it.
      for (const row of dropped) {
        await this.deleteObject(row.object_name, { sessionId });
        report.blobs += 1;
        report.bytes += Number(row.bytes);
      }
    }

    // 2. Objects the catalog does not know. Listed first, then checked: an upload row exists
    //    before its object does, and goes in the transaction that catalogs it, so every object in
    //    the listing is catalogued, in flight, or garbage.
    const listed: ObjectInfo[] = [];
    for await (const object of this.objects.list()) listed.push(object);
    const known = await this.run({}, async (client) => {
      const names = listed.map((o) => o.name);
      const { rows } = await client.query<{ name: string }>(
        `SELECT n AS name FROM unnest($1::text[]) AS n
         WHERE EXISTS (SELECT 1 FROM session_blob WHERE object_name = n)
            OR EXISTS (SELECT 1 FROM blob_upload u JOIN checkpoint c ON c.id = u.checkpoint_id
                       WHERE u.object_name = n AND c.state = 'writing')`,
        [names],
      );
      return new Set(rows.map((r) => r.name));
    });
    for (const object of listed) {
      if (known.has(object.name)) continue;
      // A probe in progress is not catalogued; only long-dead ones are garbage.
      if (object.name.startsWith('probes/') && now.getTime() - object.modifiedAt.getTime() < PROBE_GRACE_MS) continue;
      await this.deleteObject(object.name, {});
      report.orphanObjects += 1;
    }

    // 3. Upload rows of checkpoints that are no longer being written, and leftovers of writes that
    //    died half way.
    await this.run({}, (client) =>
      client.query(
        `DELETE FROM blob_upload u USING checkpoint c
         WHERE c.id = u.checkpoint_id AND (c.state <> 'writing' OR u.started_at < $1)`,
        [abandonedBefore],
      ),
    );
    report.incompleteWrites = await this.objects.sweepIncomplete(abandonedBefore);
    if (report.blobs + report.orphanObjects + report.incompleteWrites > 0) {
      this.logger?.info({ ...report, store: this.objects.kind }, 'garbage collected');
    }
    return report;
  }

  async measureBandwidth(bytes: number): Promise<{ writeBytesPerS: number; readBytesPerS: number }> {
    const name = `probes/${randomUUID()}`;
    const piece = randomBytes(Math.min(bytes, 1024 * 1024)); // incompressible, like pickled arrays
    const pieces = Math.max(1, Math.ceil(bytes / piece.length));
    try {
      const t0 = performance.now();
      const written = await this.objects.put(name, Readable.from((function* () {
        for (let i = 0; i < pieces; i++) yield piece;
      })()));
      const t1 = performance.now();
      const { body } = await this.objects.get(name);
      for await (const _ of body) {
        // drain: the time to read every byte is what is measured
      }
      const t2 = performance.now();
      return { writeBytesPerS: written.bytes / ((t1 - t0) / 1000), readBytesPerS: written.bytes / ((t2 - t1) / 1000) };
    } finally {
      await this.deleteObject(name, {});
    }
  }

  /** Records the upload (if the checkpoint still accepts blobs) and names its object. */
  private async beginUpload(checkpointId: string, key: string): Promise<{ sessionId: string; objectName: string }> {
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    return this.run({ checkpointId, key }, async (client) => {
      const { rows } = await client.query<{ kernel_session_id: string; state: string }>(
        'SELECT kernel_session_id, state FROM checkpoint WHERE id = $1',
        [checkpointId],
      );
      const row = rows[0];
      if (row === undefined) throw checkpointNotFound(checkpointId);
      if (row.state !== 'writing') throw checkpointNotWriting(checkpointId, row.state);
      const objectName = `sessions/${row.kernel_session_id}/${randomUUID()}`;
      const inserted = await client.query(
        `INSERT INTO blob_upload (object_name, checkpoint_id) SELECT $1, id FROM checkpoint WHERE id = $2 AND state = 'writing'`,
        [objectName, checkpointId],
      );
      if (inserted.rowCount !== 1) throw checkpointNotWriting(checkpointId, 'no longer writing');
      return { sessionId: row.kernel_session_id, objectName };
    });
  }

  /**
   * Lists the written object under `key` of the checkpoint, in one transaction.
   * @returns true when the session already held these bytes (the new object is then redundant).
   */
  private async catalog(
    checkpointId: string,
    key: string,
    sessionId: string,
    written: { name: string; bytes: number; sha256: string },
  ): Promise<boolean> {
    return withTransaction(this.pool, async (client) => {
      await client.query('SELECT 1 FROM kernel_session WHERE id = $1 FOR SHARE', [sessionId]);
      // FOR SHARE waits for a commit in progress (it locks the row FOR NO KEY UPDATE) and sees its outcome.
      const { rows } = await client.query<{ state: string }>('SELECT state FROM checkpoint WHERE id = $1 FOR SHARE', [checkpointId]);
      if (rows[0] === undefined) throw checkpointNotFound(checkpointId);
      if (rows[0].state !== 'writing') throw checkpointNotWriting(checkpointId, rows[0].state);
      const inserted = await client.query(
        `INSERT INTO session_blob (kernel_session_id, sha256, bytes, object_name) VALUES ($1, $2, $3, $4)
         ON CONFLICT (kernel_session_id, sha256) DO NOTHING`,
        [sessionId, written.sha256, written.bytes, written.name],
      );
      await client.query(
        `INSERT INTO checkpoint_blob (checkpoint_id, key, kernel_session_id, sha256) VALUES ($1, $2, $3, $4)
         ON CONFLICT (checkpoint_id, key) DO UPDATE SET sha256 = excluded.sha256`,
        [checkpointId, key, sessionId, written.sha256],
      );
      await client.query('DELETE FROM blob_upload WHERE object_name = $1', [written.name]);
      return inserted.rowCount === 0;
    });
  }

  private async locate(checkpointId: string, key: string): Promise<{ blob: StoredBlob; objectName: string } | null> {
    if (!isUuid(checkpointId) || !BLOB_KEY.test(key)) return null;
    return this.run({ checkpointId, key }, async (client) => {
      const { rows } = await client.query(
        `SELECT cb.key, sb.bytes, sb.sha256, sb.object_name FROM checkpoint_blob cb
         JOIN session_blob sb USING (kernel_session_id, sha256)
         WHERE cb.checkpoint_id = $1 AND cb.key = $2`,
        [checkpointId, key],
      );
      const row = rows[0] as { object_name: string } | undefined;
      return row === undefined ? null : { blob: toStoredBlob(row), objectName: row.object_name };
    });
  }

  /** Best effort: a failure leaves an orphan object, which the next garbage collection removes. */
  private async deleteObject(name: string, context: ErrorContext): Promise<void> {
    try {
      await this.objects.delete(name);
    } catch (err) {
      this.logger?.warn({ ...context, object: name, reason: err instanceof Error ? err.message : String(err) }, 'could not delete an object; the next garbage collection retries');
    }
  }

  /** Best effort: an upload row left behind is removed by garbage collection. */
  private async forgetUpload(objectName: string, context: ErrorContext): Promise<void> {
    try {
      await withClient(this.pool, (client) => client.query('DELETE FROM blob_upload WHERE object_name = $1', [objectName]));
    } catch (err) {
      this.logger?.warn({ ...context, reason: err instanceof Error ? err.message : String(err) }, 'could not remove an upload record');
    }
  }

  private async run<T>(context: ErrorContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await withClient(this.pool, work);
    } catch (err) {
      throw mapPgError(err, context);
    }
  }

  private async transaction<T>(context: ErrorContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await withTransaction(this.pool, work);
    } catch (err) {
      throw mapPgError(err, context);
    }
  }
}

/** Bytes of the distinct blobs the user's complete checkpoints list. */
export async function usedBytes(client: pg.PoolClient, user: string): Promise<number> {
  const { rows } = await client.query<{ bytes: string }>(
    `SELECT coalesce(sum(sb.bytes), 0) AS bytes FROM session_blob sb
     JOIN kernel_session s ON s.id = sb.kernel_session_id
     WHERE s.user_name = $1
       AND EXISTS (SELECT 1 FROM checkpoint_blob cb JOIN checkpoint c ON c.id = cb.checkpoint_id
                   WHERE cb.kernel_session_id = sb.kernel_session_id AND cb.sha256 = sb.sha256 AND c.state = 'complete')`,
    [user],
  );
  return Number(rows[0]?.bytes ?? 0);
}

/**
 * Where the bytes of checkpoint blobs live: opaque objects under names, nothing more.
 *
 * Which checkpoint holds which group, and which content a session already has, is kept in Postgres
 * (the blob catalog, `postgres/pg-blob-store.ts`); an object store only stores, streams back, lists and
 * deletes bytes. That keeps the three backends (Postgres, a directory, S3) small and alike, and
 * lets every one of them pass the same contract tests (test/integration/store/object-store-contract.ts).
 *
 * Names are chosen by the catalog: `sessions/<session id>/<upload id>` for blobs, `probes/<id>` for
 * bandwidth probes. A name is written once; callers never write an existing name again.
 */
import type { Readable } from 'node:stream';
import { ResumeError } from '../errors.js';

/** What a finished write stored. */
export type WrittenObject = { name: string; bytes: number; sha256: string };

/** A complete object, as `list` sees it. */
export type ObjectInfo = { name: string; bytes: number; modifiedAt: Date };

export type ObjectStoreKind = 'postgres' | 'filesystem' | 's3';

export interface ObjectStore {
  readonly kind: ObjectStoreKind;
  /**
   * Streams `body` into object `name`, computing its size and sha256 on the way, in bounded memory
   * (a 1 GB blob is never one buffer). The object becomes visible to `get` and `list` only once it
   * is complete. If the body fails, or the store does, the write throws and leaves nothing visible
   * under the name; what an interrupted write leaves behind (a temp file, an unfinished multipart
   * upload, incomplete rows) is removed by `sweepIncomplete`.
   * On failure `body` is left unconsumed, not destroyed, so an HTTP handler can still answer.
   * @throws ResumeError RESUME_ERR_OBJECT_NAME_INVALID (400), RESUME_ERR_BLOB_UPLOAD_ABORTED (400:
   *   the body stream failed), RESUME_ERR_STORE_UNAVAILABLE (503: the store cannot be reached or
   *   refused the write).
   */
  put(name: string, body: Readable): Promise<WrittenObject>;
  /**
   * Streams a complete object back. Destroy `body` if you stop reading early.
   * @throws ResumeError RESUME_ERR_BLOB_NOT_FOUND (404), RESUME_ERR_STORE_UNAVAILABLE (503).
   */
  get(name: string): Promise<{ bytes: number; body: Readable }>;
  /** Removes an object; removing one that does not exist is not an error. */
  delete(name: string): Promise<void>;
  /** Every complete object whose name starts with `prefix` (all when empty), in name order. */
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /**
   * Removes what interrupted writes begun before `startedBefore` left behind.
   * @returns how many leftovers were removed.
   */
  sweepIncomplete(startedBefore: Date): Promise<number>;
  /** Releases connections and clients the store opened itself. Idempotent. */
  close(): Promise<void>;
}

/** Object names: lowercase segments of [a-z0-9-] joined by '/', never '.' or '..' (a path on disk, a key in S3). */
const OBJECT_NAME = /^[a-z0-9][a-z0-9-]{0,63}(\/[a-z0-9][a-z0-9-]{0,63}){0,3}$/;

/** @throws ResumeError RESUME_ERR_OBJECT_NAME_INVALID (400) for a name outside the syntax above. */
export function assertObjectName(name: string): void {
  if (!OBJECT_NAME.test(name)) {
    throw new ResumeError('RESUME_ERR_OBJECT_NAME_INVALID', `object name ${JSON.stringify(name)} is not [a-z0-9-] segments joined by "/"`, {
      status: 400,
      hint: 'Object names are chosen by the blob catalog, e.g. sessions/<session id>/<upload id>.',
    });
  }
}

/** True when `name` is a valid object name starting with `prefix` (also for list filters). */
export function isObjectName(name: string): boolean {
  return OBJECT_NAME.test(name);
}

export function objectNotFound(name: string): ResumeError {
  return new ResumeError('RESUME_ERR_BLOB_NOT_FOUND', `no stored object ${name}`, {
    status: 404,
    hint: 'The checkpoint that held it was deleted, or the store lost it; the variables in it cannot be loaded from this checkpoint.',
    context: { object: name },
  });
}

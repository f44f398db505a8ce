/**
 * ObjectStore in a directory, typically a shared volume (NFS, a PVC) mounted into the service's
 * pod: object `sessions/s1/u1` is the file `<dir>/sessions/s1/u1`.
 *
 * A write streams into a hidden temp file next to its target (`.u1.<12 hex>.partial`), fsyncs it,
 * renames it into place and fsyncs the folder. Rename within a folder is atomic (also on NFS), so
 * `get` and `list` see no object or the complete one, and a crash leaves at worst a temp file,
 * which `list` never shows and `sweepIncomplete` removes. Names are checked with
 * `assertObjectName` before any path is built from them, so no name reaches outside the directory.
 *
 * Unlike S3, a name here cannot be an object and also a folder of other objects (`a/b` and
 * `a/b/c`); the catalog's names (`sessions/<session>/<upload>`, `probes/<id>`) never need that, and
 * such a write is refused as RESUME_ERR_OBJECT_NAME_INVALID.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ResumeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { DigestStream } from '../digest-stream.js';
import { bodyPieces } from '../upload-body.js';
import { assertObjectName, isObjectName, objectNotFound, type ObjectInfo, type ObjectStore, type WrittenObject } from '../object-store.js';

/** The temp file of a write in progress: `.<last name segment>.<12 hex>.partial`. */
const TEMP_FILE = /^\.[a-z0-9][a-z0-9-]{0,63}\.[0-9a-f]{12}\.partial$/;

/** Errors of a path that does not lead to a file: the object does not exist. */
const MISSING = new Set(['ENOENT', 'ENOTDIR']);

/** Errors of a folder that cannot be fsynced (some network and FUSE filesystems): nothing to do. */
const FSYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']);

export type FsObjectStoreOptions = {
  /** The root directory; created (with its parents) by `open` when missing. */
  dir: string;
  /** Debug lines per object, warnings for leftovers it could not remove. */
  logger?: Logger;
};

export class FsObjectStore implements ObjectStore {
  readonly kind = 'filesystem' as const;
  /** Absolute path of the root directory. */
  readonly dir: string;
  private readonly logger: Logger | undefined;

  /** Touches nothing on disk; `FsObjectStore.open` also checks that the directory is usable. */
  constructor(options: FsObjectStoreOptions) {
    this.dir = path.resolve(options.dir);
    this.logger = options.logger;
  }

  /**
   * Creates the root directory if missing and proves it writable with a probe file, so a wrong
   * RESUME_BLOB_DIR fails start-up, not the first checkpoint.
   * @throws ResumeError RESUME_ERR_STORE_UNAVAILABLE (503) naming the directory and what is wrong.
   */
  static async open(options: FsObjectStoreOptions): Promise<FsObjectStore> {
    const store = new FsObjectStore(options);
    // Named like a temp file, so a probe left by a crash right here is swept like one.
    const probe = path.join(store.dir, `.probe.${randomBytes(6).toString('hex')}.partial`);
    try {
      await mkdir(store.dir, { recursive: true });
      const handle = await open(probe, 'wx');
      await handle.close();
      await unlink(probe);
    } catch (err) {
      throw store.unavailable(err, 'create a file');
    }
    return store;
  }

  /**
   * Streams `body` into a temp file through a DigestStream, then renames it into place.
   * On failure the temp file is removed and `body` is neither destroyed nor read further.
   * @throws ResumeError RESUME_ERR_OBJECT_NAME_INVALID (400, also for a name that collides with a
   *   folder), RESUME_ERR_BLOB_UPLOAD_ABORTED (400), RESUME_ERR_STORE_UNAVAILABLE (503).
   */
  async put(name: string, body: Readable): Promise<WrittenObject> {
    assertObjectName(name);
    const target = this.pathOf(name);
    const folder = path.dirname(target);
    const temp = path.join(folder, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.partial`);
    const handle = await this.createTemp(folder, temp, name);
    let written: { bytes: number; sha256: string };
    try {
      written = await writeAndSync(handle, body, name);
      await rename(temp, target);
    } catch (err) {
      await this.discard(temp, name);
      throw await this.failure(err, 'write', name);
    }
    try {
      await syncFolder(folder);
    } catch (err) {
      // Visible but maybe not durable: take it back, so the caller's failure means "not stored".
      await this.discard(target, name);
      throw await this.failure(err, 'write', name);
    }
    this.logger?.debug({ object: name, bytes: written.bytes }, 'object stored');
    return { name, ...written };
  }

  /**
   * Opens the file, then reads its size from the open handle: a delete or replacement after that
   * does not change what this body streams.
   */
  async get(name: string): Promise<{ bytes: number; body: Readable }> {
    assertObjectName(name);
    let handle: FileHandle;
    try {
      handle = await open(this.pathOf(name), 'r');
    } catch (err) {
      throw isMissing(err) ? objectNotFound(name) : await this.failure(err, 'read', name);
    }
    try {
      const info = await handle.stat();
      // A folder of other objects is not an object.
      if (!info.isFile()) throw objectNotFound(name);
      return { bytes: info.size, body: handle.createReadStream() };
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw await this.failure(err, 'read', name);
    }
  }

  /** Removes the file, then the folders it leaves empty (never the root). */
  async delete(name: string): Promise<void> {
    assertObjectName(name);
    const target = this.pathOf(name);
    try {
      await unlink(target);
    } catch (err) {
      // EISDIR: the name is a folder of other objects, not an object.
      if (isMissing(err) || errno(err) === 'EISDIR') return;
      throw await this.failure(err, 'delete', name);
    }
    await this.removeEmptyFolders(path.dirname(target));
  }

  /**
   * Walks only the folder the prefix ends in, in name order. A prefix no object name can start
   * with (`../`, `A`, `a//`) lists nothing and touches no path.
   */
  async *list(prefix = ''): AsyncGenerator<ObjectInfo> {
    const cut = prefix.lastIndexOf('/');
    const folder = cut < 0 ? '' : prefix.slice(0, cut);
    const start = prefix.slice(cut + 1);
    // Any non-empty start of a valid segment is a valid one-segment name.
    if ((folder !== '' && !canHoldObjects(folder)) || (start !== '' && !isObjectName(start))) return;
    yield* this.walk(folder, start);
  }

  /**
   * Removes temp files last written before `startedBefore`. It goes by mtime, which a live write
   * keeps moving, so a slow write still in progress is spared; on NFS the mtime is the server's
   * clock, so leave a margin of a few minutes.
   */
  async sweepIncomplete(startedBefore: Date): Promise<number> {
    let removed = 0;
    for await (const temp of this.tempFiles('')) {
      try {
        if ((await stat(temp)).mtime >= startedBefore) continue;
        await unlink(temp);
      } catch (err) {
        if (isMissing(err)) continue; // renamed into place or swept by another replica meanwhile
        throw await this.failure(err, 'sweep');
      }
      removed++;
      this.logger?.debug({ file: temp }, 'removed the temp file of an interrupted write');
      await this.removeEmptyFolders(path.dirname(temp));
    }
    return removed;
  }

  /** Nothing to release: every handle is closed by the operation or the body that opened it. */
  async close(): Promise<void> {}

  /** The file of a valid name (or folder of a valid name's start): the name's segments under the root. */
  private pathOf(name: string): string {
    return name === '' ? this.dir : path.join(this.dir, ...name.split('/'));
  }

  /** Creates the folders of `temp` and opens it exclusively. */
  private async createTemp(folder: string, temp: string, name: string): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      try {
        const first = await mkdir(folder, { recursive: true });
        if (first !== undefined) await syncCreatedFolders(first, folder);
        return await open(temp, 'wx');
      } catch (err) {
        // A delete of the folder's last object may remove the folder between mkdir and open.
        if (errno(err) === 'ENOENT' && attempt < 3) continue;
        throw await this.failure(err, 'write', name);
      }
    }
  }

  /** Best effort: a file that stays behind is swept later (temp) or was never reported stored. */
  private async discard(file: string, name: string): Promise<void> {
    try {
      await rm(file, { force: true });
      await this.removeEmptyFolders(path.dirname(file));
    } catch (err) {
      this.logger?.warn({ object: name, file, reason: err instanceof Error ? err.message : String(err) }, 'could not remove the file of a failed write');
    }
  }

  /** Removes `folder` and its parents while they are empty, stopping below the root. */
  private async removeEmptyFolders(folder: string): Promise<void> {
    for (let current = folder; current.startsWith(this.dir + path.sep); current = path.dirname(current)) {
      try {
        await rmdir(current);
      } catch {
        return; // ENOTEMPTY (another object, or a write in progress), ENOENT (removed meanwhile), …
      }
    }
  }

  /** Objects under `folder` (a valid name start, '' for the root) whose next segment starts with `start`, in name order. */
  private async *walk(folder: string, start: string): AsyncGenerator<ObjectInfo> {
    const entries = (await this.entriesOf(folder)).filter(
      (e) => e.name.startsWith(start) && isObjectName(e.name) && (e.isFile() || e.isDirectory()),
    );
    // All objects in folder `x` start with "x/", so among its siblings the folder sorts as "x/".
    const keyed = entries.map((entry) => ({ entry, key: entry.isDirectory() ? `${entry.name}/` : entry.name }));
    keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const { entry } of keyed) {
      const name = folder === '' ? entry.name : `${folder}/${entry.name}`;
      if (entry.isDirectory()) {
        if (canHoldObjects(name)) yield* this.walk(name, '');
        continue;
      }
      if (!isObjectName(name)) continue; // deeper than any object name
      const info = await this.statObject(name);
      if (info !== null) yield info;
    }
  }

  /** The size and mtime of a listed file, or null if it was deleted since the folder was read. */
  private async statObject(name: string): Promise<ObjectInfo | null> {
    try {
      const info = await stat(this.pathOf(name));
      return info.isFile() ? { name, bytes: info.size, modifiedAt: info.mtime } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw await this.failure(err, 'list', name);
    }
  }

  /** Paths of the temp files under `folder` (a valid name start, '' for the root). */
  private async *tempFiles(folder: string): AsyncGenerator<string> {
    for (const entry of await this.entriesOf(folder)) {
      const name = folder === '' ? entry.name : `${folder}/${entry.name}`;
      if (entry.isDirectory() && canHoldObjects(name)) yield* this.tempFiles(name);
      else if (entry.isFile() && TEMP_FILE.test(entry.name)) yield path.join(this.pathOf(folder), entry.name);
    }
  }

  /** The entries of a folder; none if it does not exist (any more). */
  private async entriesOf(folder: string): Promise<Dirent[]> {
    try {
      return await readdir(this.pathOf(folder), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return [];
      throw await this.failure(err, 'list', folder === '' ? undefined : folder);
    }
  }

  /**
   * The ResumeError for a failed file operation: a name that collides with a folder (or a file
   * where a folder should be) is the caller's, anything else the store's. Errors without an errno
   * (bugs) are returned unchanged, for their stack.
   */
  private async failure(err: unknown, doing: string, name?: string): Promise<unknown> {
    if (err instanceof ResumeError) return err;
    const code = errno(err);
    if (code === undefined) return err;
    if (name !== undefined && (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST') && (await this.rootIsFolder())) {
      return new ResumeError('RESUME_ERR_OBJECT_NAME_INVALID', `object name ${JSON.stringify(name)} collides with a folder or file of another object`, {
        status: 400,
        hint: 'In a filesystem store a name cannot be both an object and a folder of other objects (a/b and a/b/c).',
        context: { object: name, dir: this.dir },
      });
    }
    return this.unavailable(err, doing, name);
  }

  private async rootIsFolder(): Promise<boolean> {
    try {
      return (await stat(this.dir)).isDirectory();
    } catch {
      return false;
    }
  }

  /** RESUME_ERR_STORE_UNAVAILABLE naming the directory, with a hint for the errno. */
  private unavailable(err: unknown, doing: string, name?: string): ResumeError {
    const code = errno(err) ?? 'unknown';
    return new ResumeError('RESUME_ERR_STORE_UNAVAILABLE', `could not ${doing} in the object directory ${this.dir} (${code})`, {
      status: 503,
      hint: hintFor(code, this.dir),
      context: name === undefined ? { dir: this.dir, errno: code } : { object: name, dir: this.dir, errno: code },
      cause: err,
    });
  }
}

/**
 * Feeds the body's bytes through a DigestStream into the temp file and fsyncs it; closes the
 * handle either way. The caller's body never enters a pipeline (a failing pipeline destroys its
 * streams): it is read through an iterator that leaves it alone when dropped, and only while the
 * file keeps up, so at most one piece more than was written is taken from it.
 */
async function writeAndSync(handle: FileHandle, body: Readable, name: string): Promise<{ bytes: number; sha256: string }> {
  const digest = new DigestStream();
  // autoClose: false keeps the handle open after the last write, for the fsync.
  const sink = handle.createWriteStream({ autoClose: false });
  const written = pipeline(digest, sink);
  written.catch(() => undefined); // awaited below; a disk error may come while the body is read
  try {
    await feed(body, digest, written, name);
    digest.end();
    await written;
    await handle.sync();
  } catch (err) {
    digest.destroy();
    await written.catch(() => undefined);
    await closeFile(handle, sink).catch(() => undefined);
    throw err;
  }
  await closeFile(handle, sink); // on NFS, close is where a failed flush shows
  return { bytes: digest.bytes, sha256: digest.sha256 };
}

/**
 * Closes a file written through `sink`: the stream holds the handle until it is destroyed, and
 * `handle.close()` waits for that (it would wait forever for a stream left open).
 */
async function closeFile(handle: FileHandle, sink: Writable): Promise<void> {
  sink.on('error', () => undefined); // a failed close rejects handle.close() below as well
  sink.destroy();
  await handle.close();
}

/**
 * Writes the body's pieces into `into`, waiting for it to drain (or fail) when it is full.
 * @throws ResumeError RESUME_ERR_BLOB_UPLOAD_ABORTED when the body fails or yields non-bytes;
 *   the disk error when `written` fails first.
 */
async function feed(body: Readable, into: DigestStream, written: Promise<void>, name: string): Promise<void> {
  for await (const piece of bodyPieces(body, { object: name })) {
    if (!into.write(piece)) await Promise.race([once(into, 'drain'), written]);
  }
}

/** fsyncs a folder, so the entries just created or renamed in it survive a crash. */
async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } catch (err) {
    if (!FSYNC_UNSUPPORTED.has(errno(err) ?? '')) throw err;
  } finally {
    await handle.close();
  }
}

/** fsyncs the parents of the folders mkdir just created, from `first`'s parent down to `folder`'s. */
async function syncCreatedFolders(first: string, folder: string): Promise<void> {
  const top = path.dirname(first);
  for (let current = path.dirname(folder); ; current = path.dirname(current)) {
    await syncFolder(current);
    if (current === top || current === path.dirname(current)) return;
  }
}

/** True when an object name can continue below `folder` (it has fewer segments than the maximum). */
function canHoldObjects(folder: string): boolean {
  return isObjectName(`${folder}/a`);
}

function errno(err: unknown): string | undefined {
  const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && code.startsWith('E') ? code : undefined;
}

function isMissing(err: unknown): boolean {
  return MISSING.has(errno(err) ?? '');
}

/** What an operator can do about an errno from the object directory. */
function hintFor(code: string, dir: string): string {
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return `The volume holding ${dir} is full or over its quota: free space (delete old checkpoints) or grow the volume.`;
    case 'EACCES':
    case 'EPERM':
      return `The service's user lacks permission in ${dir}: make it the owner, or give it read and write permission (on Kubernetes, the pod's fsGroup).`;
    case 'EROFS':
      return `${dir} is on a read-only filesystem: mount the volume read-write.`;
    case 'ENOTDIR':
    case 'EEXIST':
      return `${dir} (or a folder on the way to it) is a file, not a directory: point RESUME_BLOB_DIR at a directory.`;
    case 'ENOENT':
      return `${dir} or a folder in it disappeared: check that the volume is mounted and RESUME_BLOB_DIR points into it.`;
    case 'EMFILE':
    case 'ENFILE':
      return 'The service ran out of file descriptors: raise its open-file limit.';
    default:
      return `Reading or writing ${dir} failed (${code}): check the volume (for NFS, that its server is reachable); the operation can be retried.`;
  }
}

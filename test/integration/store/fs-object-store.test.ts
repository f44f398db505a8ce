import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isResumeError } from '../../../src/errors.js';
import { FsObjectStore } from '../../../src/store/filesystem/fs-object-store.js';
import { collect, failingStream } from '../../fixtures/byte-streams.js';
import { objectStoreContract, rejectsWith } from './object-store-contract.js';

objectStoreContract('FsObjectStore', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'resume-objects-'));
  const store = await FsObjectStore.open({ dir });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** Every file under `dir`, as paths relative to it, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath ?? e.path, e.name)))
    .sort();
}

describe('FsObjectStore in a directory', () => {
  const made: string[] = [];
  /** A fresh directory under the system temp dir, removed after the suite. */
  async function freshDir(): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'resume-objects-'));
    made.push(dir);
    return dir;
  }

  after(async () => {
    for (const dir of made) {
      await chmod(dir, 0o700).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stores object a/b/c as the file <dir>/a/b/c and never touches a path outside the directory', async () => {
    const outer = await freshDir();
    await writeFile(path.join(outer, 'victim'), 'outside');
    const store = await FsObjectStore.open({ dir: path.join(outer, 'store') });

    await store.put('sessions/s1/u1', Readable.from([Buffer.from('inside')]));
    assert.equal(await readFile(path.join(outer, 'store', 'sessions', 's1', 'u1'), 'utf8'), 'inside');

    for (const bad of ['../victim', 'a/../../victim', '../store-2/x', `${outer}/victim`, 'sessions/../../victim']) {
      await rejectsWith(store.put(bad, Readable.from([Buffer.from('evil')])), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
      await rejectsWith(store.get(bad), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
      await rejectsWith(store.delete(bad), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
    }
    for await (const info of store.list('../')) assert.fail(`listed ${info.name} outside the directory`);

    assert.deepEqual(await filesUnder(outer), ['store/sessions/s1/u1', 'victim']);
    assert.equal(await readFile(path.join(outer, 'victim'), 'utf8'), 'outside');
  });

  it('never lists the temp file a crashed write left, and sweeps it once it is older than the cutoff', async () => {
    const dir = await freshDir();
    const store = await FsObjectStore.open({ dir });
    await store.put('sessions/s1/kept', Readable.from([Buffer.from('complete')]));
    const folder = path.join(dir, 'sessions', 's1');
    const crashed = path.join(folder, '.crashed.0123456789ab.partial');
    const inProgress = path.join(folder, '.writing.abcdef012345.partial');
    await writeFile(crashed, randomBytes(1000));
    await writeFile(inProgress, randomBytes(1000));
    const anHourAgo = new Date(Date.now() - 3_600_000);
    await utimes(crashed, anHourAgo, anHourAgo);

    const names = async () => {
      const out: string[] = [];
      for await (const info of store.list()) out.push(info.name);
      return out;
    };
    assert.deepEqual(await names(), ['sessions/s1/kept']);
    await rejectsWith(store.get('sessions/s1/crashed'), 'RESUME_ERR_BLOB_NOT_FOUND', 404);

    assert.equal(await store.sweepIncomplete(new Date(Date.now() - 600_000)), 1, 'only the file last written an hour ago');
    assert.deepEqual(await filesUnder(dir), ['sessions/s1/.writing.abcdef012345.partial', 'sessions/s1/kept']);

    assert.equal(await store.sweepIncomplete(new Date(Date.now() + 60_000)), 1);
    assert.deepEqual(await filesUnder(dir), ['sessions/s1/kept']);
    assert.equal((await collect((await store.get('sessions/s1/kept')).body)).toString(), 'complete');
  });

  it('leaves no file and no new folder behind when the body fails', async () => {
    const dir = await freshDir();
    const store = await FsObjectStore.open({ dir });

    await rejectsWith(store.put('sessions/s2/broken', failingStream(randomBytes(3 * 1024 * 1024), new Error('client went away'))), 'RESUME_ERR_BLOB_UPLOAD_ABORTED', 400);

    assert.deepEqual(await readdir(dir), []);
  });

  it('removes the folders a delete leaves empty, but never the directory itself', async () => {
    const dir = await freshDir();
    const store = await FsObjectStore.open({ dir });
    await store.put('sessions/s1/a', Readable.from([Buffer.from('a')]));
    await store.put('sessions/s1/b', Readable.from([Buffer.from('b')]));

    await store.delete('sessions/s1/a');
    assert.deepEqual(await filesUnder(dir), ['sessions/s1/b']);
    await store.delete('sessions/s1/b');

    assert.deepEqual(await readdir(dir), []);
  });

  it('refuses a name that is also a folder of other objects, keeping both the body and the existing objects', async () => {
    const dir = await freshDir();
    const store = await FsObjectStore.open({ dir });
    await store.put('sessions/s1', Readable.from([Buffer.from('a file')]));
    await store.put('sessions/s2/u1', Readable.from([Buffer.from('in a folder')]));

    const under = Readable.from([Buffer.from('under a file')], { objectMode: false });
    await rejectsWith(store.put('sessions/s1/u1', under), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
    assert.equal(under.destroyed, false);
    await rejectsWith(store.put('sessions/s2', Readable.from([Buffer.from('over a folder')])), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
    await rejectsWith(store.get('sessions/s2'), 'RESUME_ERR_BLOB_NOT_FOUND', 404);

    assert.deepEqual(await filesUnder(dir), ['sessions/s1', 'sessions/s2/u1']);
  });

  it('answers RESUME_ERR_STORE_UNAVAILABLE naming the directory when it is replaced by a file, leaving the body alone', async () => {
    const outer = await freshDir();
    const dir = path.join(outer, 'objects');
    const store = await FsObjectStore.open({ dir });
    await rm(dir, { recursive: true });
    await writeFile(dir, 'not a directory');

    const body = Readable.from([Buffer.from('bytes')], { objectMode: false });
    await assert.rejects(store.put('sessions/s1/u1', body), (e: unknown) => {
      assert.ok(isResumeError(e));
      assert.equal(e.code, 'RESUME_ERR_STORE_UNAVAILABLE');
      assert.equal(e.status, 503);
      assert.match(e.hint ?? '', new RegExp(`${dir}.*not a directory`));
      return true;
    });
    assert.equal(body.destroyed, false);
  });

  it('open() fails with RESUME_ERR_STORE_UNAVAILABLE naming a path that is a file', async () => {
    const outer = await freshDir();
    const file = path.join(outer, 'a-file');
    await writeFile(file, 'x');

    for (const dir of [file, path.join(file, 'objects')]) {
      await assert.rejects(FsObjectStore.open({ dir }), (e: unknown) => {
        assert.ok(isResumeError(e));
        assert.equal(e.code, 'RESUME_ERR_STORE_UNAVAILABLE');
        assert.equal(e.status, 503);
        assert.ok(e.message.includes(dir), e.message);
        assert.match(e.hint ?? '', /not a directory/);
        return true;
      });
    }
  });

  it('open() fails with RESUME_ERR_STORE_UNAVAILABLE for a directory the service user may not write in', { timeout: 60_000 }, async () => {
    const outer = await freshDir();
    const dir = path.join(outer, 'read-only');
    await mkdir(dir);
    await chmod(dir, 0o555);
    await chmod(outer, 0o755);

    // Root may write anywhere, so the check runs as an unprivileged user in a child process.
    const failure = JSON.parse(await openInChildProcess(dir)) as { code?: string; status?: number; message?: string; hint?: string };

    assert.equal(failure.code, 'RESUME_ERR_STORE_UNAVAILABLE');
    assert.equal(failure.status, 503);
    assert.ok(failure.message?.includes(dir), failure.message);
    assert.match(failure.hint ?? '', /lacks permission/);
  });
});

/** Runs FsObjectStore.open({ dir }) in a child process (as user nobody when we are root); its failure as JSON. */
async function openInChildProcess(dir: string): Promise<string> {
  const storeModule = fileURLToPath(new URL('../../../src/store/filesystem/fs-object-store.ts', import.meta.url));
  const script = `
    const { FsObjectStore } = await import(${JSON.stringify(storeModule)});
    try {
      await FsObjectStore.open({ dir: process.env.OBJECT_DIR });
      console.log(JSON.stringify({ opened: true }));
    } catch (e) {
      console.log(JSON.stringify({ code: e.code, status: e.status, message: e.message, hint: e.hint }));
    }`;
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('../../..', import.meta.url)),
    env: { ...process.env, OBJECT_DIR: dir },
    ...asNobody,
  });
  return stdout.trim();
}

/**
 * The behaviour every ObjectStore backend (Postgres, a directory, S3) must show, as one suite each
 * backend's test file runs against a real instance of it:
 *
 *   objectStoreContract('FsObjectStore', async () => ({ store, cleanup }));
 *
 * Each test works under its own random `sessions/<hex>/` prefix, so tests need no order and leave
 * other tests' objects alone; only the checks on `list()` without a prefix look at the whole store.
 * `open()` runs once before the suite and must give a store no other suite writes to at the same
 * time: the tests sweep incomplete writes with a cutoff in the future, which would also remove
 * another suite's writes in progress. `cleanup()` runs once after it and should close the store
 * and remove what `open()` created.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import { isObjectName, type ObjectInfo, type ObjectStore } from '../../../src/store/object-store.js';
import { collect, failingStream, randomStream } from '../../fixtures/byte-streams.js';

const MiB = 1024 * 1024;
const EMPTY_SHA256 = createHash('sha256').digest('hex');

export type OpenedObjectStore = { store: ObjectStore; cleanup(): Promise<void> };

/** A prefix no other test uses: `sessions/<16 hex>`. */
function freshPrefix(): string {
  return `sessions/${randomBytes(8).toString('hex')}`;
}

function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Asserts that `promise` rejects with a ResumeError of this code and HTTP status. */
export async function rejectsWith(promise: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isResumeError(e), `a ResumeError, not ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.status, status);
    return true;
  });
}

async function listed(store: ObjectStore, prefix?: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of prefix === undefined ? store.list() : store.list(prefix)) out.push(info);
  return out;
}

async function namesListed(store: ObjectStore, prefix?: string): Promise<string[]> {
  return (await listed(store, prefix)).map((info) => info.name);
}

/** The whole content of object `name`, checking that `get` announced its size right. */
async function contentOf(store: ObjectStore, name: string): Promise<Buffer> {
  const { bytes, body } = await store.get(name);
  const data = await collect(body);
  assert.equal(bytes, data.length, `get(${name}) announced ${bytes} bytes and streamed ${data.length}`);
  return data;
}

/**
 * A body the test feeds by hand: `started` resolves once the store has taken the first piece and
 * asks for more, so the test knows a write is in progress without sleeping.
 */
function handFedStream(first: Buffer): { body: Readable; started: Promise<void>; end(rest: Buffer): void } {
  let onStarted!: () => void;
  const started = new Promise<void>((resolve) => (onStarted = resolve));
  const body = new Readable({
    read() {
      onStarted();
    },
  });
  body.push(first);
  return {
    body,
    started,
    end(rest) {
      body.push(rest);
      body.push(null);
    },
  };
}

/**
 * Declares `describe(name)`: the ObjectStore contract against the store `open()` gives.
 * @param open starts the backend (once for the suite); its `cleanup` closes and removes it.
 */
export function objectStoreContract(name: string, open: () => Promise<OpenedObjectStore>): void {
  describe(name, () => {
    let opened: OpenedObjectStore | undefined;
    let store: ObjectStore;

    before(async () => {
      opened = await open();
      store = opened.store;
    });

    after(async () => {
      await opened?.cleanup();
    });

    it('stores a 40 MB stream sent in 64 KiB pieces, answers its size and sha256, and streams the same bytes back', { timeout: 120_000 }, async () => {
      const objectName = `${freshPrefix()}/big`;
      const total = 40 * MiB + 12_345; // not a multiple of any chunk or part size
      const { body, sha256 } = randomStream(total);

      const written = await store.put(objectName, body);

      assert.deepEqual(written, { name: objectName, bytes: total, sha256: await sha256 });
      const back = await store.get(objectName);
      assert.equal(back.bytes, total);
      const hash = createHash('sha256');
      let streamed = 0;
      for await (const piece of back.body) {
        hash.update(piece as Buffer);
        streamed += (piece as Buffer).length;
      }
      assert.equal(streamed, total);
      assert.equal(hash.digest('hex'), written.sha256);
    });

    it('stores and streams back an empty object', async () => {
      const objectName = `${freshPrefix()}/empty`;

      const written = await store.put(objectName, Readable.from([]));

      assert.deepEqual(written, { name: objectName, bytes: 0, sha256: EMPTY_SHA256 });
      assert.equal((await contentOf(store, objectName)).length, 0);
      assert.deepEqual(
        (await listed(store, objectName)).map(({ name: n, bytes }) => ({ name: n, bytes })),
        [{ name: objectName, bytes: 0 }],
      );
    });

    it('keeps an object out of get and list until its put resolves', async () => {
      const prefix = freshPrefix();
      const objectName = `${prefix}/slow`;
      const first = randomBytes(256 * 1024);
      const rest = randomBytes(100_000);
      const feed = handFedStream(first);

      const writing = store.put(objectName, feed.body);
      await feed.started;

      assert.deepEqual(await namesListed(store, `${prefix}/`), [], 'an object being written is not listed');
      await rejectsWith(store.get(objectName), 'RESUME_ERR_BLOB_NOT_FOUND', 404);

      feed.end(rest);
      const written = await writing;
      assert.deepEqual(written, { name: objectName, bytes: first.length + rest.length, sha256: sha256Of(Buffer.concat([first, rest])) });
      assert.deepEqual(await namesListed(store, `${prefix}/`), [objectName]);
    });

    it('rejects a body that fails half way with RESUME_ERR_BLOB_UPLOAD_ABORTED, and leaves nothing under the name, even after a sweep', { timeout: 60_000 }, async () => {
      const prefix = freshPrefix();
      const objectName = `${prefix}/broken`;
      const body = failingStream(randomBytes(9 * MiB), new Error('client went away'));

      await rejectsWith(store.put(objectName, body), 'RESUME_ERR_BLOB_UPLOAD_ABORTED', 400);

      await rejectsWith(store.get(objectName), 'RESUME_ERR_BLOB_NOT_FOUND', 404);
      assert.deepEqual(await namesListed(store, `${prefix}/`), []);
      const swept = await store.sweepIncomplete(new Date(Date.now() + 60_000));
      assert.ok(Number.isInteger(swept) && swept >= 0, `a count of removed leftovers, not ${swept}`);
      assert.deepEqual(await namesListed(store, `${prefix}/`), []);
      await rejectsWith(store.get(objectName), 'RESUME_ERR_BLOB_NOT_FOUND', 404);
    });

    it('rejects a body that yields something other than bytes with RESUME_ERR_BLOB_UPLOAD_ABORTED, without destroying it', { timeout: 30_000 }, async () => {
      const prefix = freshPrefix();
      const objectName = `${prefix}/not-bytes`;
      // An object-mode stream: a Buffer, then a number no byte stream can carry. It never ends
      // (an ended stream destroys itself), so a store that accepted the number would time out.
      const body = new Readable({ objectMode: true, read() {} });
      body.push(randomBytes(1024));
      body.push(42);

      await rejectsWith(store.put(objectName, body), 'RESUME_ERR_BLOB_UPLOAD_ABORTED', 400);

      assert.equal(body.destroyed, false, 'the caller decides what happens to its stream');
      await rejectsWith(store.get(objectName), 'RESUME_ERR_BLOB_NOT_FOUND', 404);
      assert.deepEqual(await namesListed(store, `${prefix}/`), []);
      body.destroy();
    });

    it('answers RESUME_ERR_BLOB_NOT_FOUND (404) for an object never stored', async () => {
      const prefix = freshPrefix();
      await rejectsWith(store.get(`${prefix}/missing`), 'RESUME_ERR_BLOB_NOT_FOUND', 404);
      await rejectsWith(store.get(`${prefix}-nowhere/missing`), 'RESUME_ERR_BLOB_NOT_FOUND', 404);
    });

    it('refuses names outside [a-z0-9-] segments joined by "/" on put and get, leaving the body unread and whole', async () => {
      const invalid = ['../x', 'a/../../b', 'A', 'a//b', '', 'a/.', '/a', 'a/', 'sessions/a b', 'sessions/é'];
      for (const bad of invalid) {
        const data = randomBytes(1000);
        const body = Readable.from([data], { objectMode: false });
        await rejectsWith(store.put(bad, body), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
        assert.equal(body.destroyed, false, `put(${JSON.stringify(bad)}) left the body alone`);
        assert.deepEqual(await collect(body), data, `put(${JSON.stringify(bad)}) did not read the body`);
        await rejectsWith(store.get(bad), 'RESUME_ERR_OBJECT_NAME_INVALID', 400);
      }
    });

    it('lists by plain string prefix of the name ("…/a/" excludes "…/ab/", "…/a" includes both): complete objects only, in name order, with sizes', async () => {
      const p = freshPrefix();
      // Byte order puts "-" before "/" before digits: a directory walk that visits "a/" first would be wrong.
      const sizes: Record<string, number> = { [`${p}/ab/y`]: 4000, [`${p}/b`]: 5, [`${p}/a/x`]: 200, [`${p}/a0`]: 3000, [`${p}/a-b`]: 10 };
      for (const [objectName, bytes] of Object.entries(sizes)) await store.put(objectName, Readable.from([randomBytes(bytes)]));
      const inOrder = [`${p}/a-b`, `${p}/a/x`, `${p}/a0`, `${p}/ab/y`, `${p}/b`];
      const infos = (names: string[]) => names.map((n) => ({ name: n, bytes: sizes[n] }));
      const seen = async (prefix: string) => (await listed(store, prefix)).map(({ name: n, bytes }) => ({ name: n, bytes }));

      assert.deepEqual(await seen(`${p}/`), infos(inOrder));
      assert.deepEqual(await seen(p), infos(inOrder));
      assert.deepEqual(await seen(`${p}/a/`), infos([`${p}/a/x`]));
      assert.deepEqual(await seen(`${p}/ab/`), infos([`${p}/ab/y`]));
      assert.deepEqual(await seen(`${p}/a`), infos([`${p}/a-b`, `${p}/a/x`, `${p}/a0`, `${p}/ab/y`]));
      assert.deepEqual(await seen(`${p}/a/x`), infos([`${p}/a/x`]), 'a prefix equal to a whole name lists that object');
      assert.deepEqual(await seen(`${p}/c`), []);
      for (const impossible of ['../', `${p}/../`, 'Sessions/', `${p}//`]) {
        assert.deepEqual(await seen(impossible), [], `no object name starts with ${JSON.stringify(impossible)}`);
      }

      const now = Date.now();
      for (const info of await listed(store, `${p}/`)) {
        assert.ok(info.modifiedAt instanceof Date && Math.abs(info.modifiedAt.getTime() - now) < 3_600_000, `${info.name}: modifiedAt ${String(info.modifiedAt)} is about now`);
      }
    });

    it('lists every object, in name order, when given no prefix or an empty one', async () => {
      const p = freshPrefix();
      const mine = [`${p}/one`, `${p}/two`];
      for (const objectName of mine) await store.put(objectName, Readable.from([Buffer.from(objectName)]));

      for (const all of [await namesListed(store), await namesListed(store, '')]) {
        for (const objectName of mine) assert.ok(all.includes(objectName), `${objectName} is listed`);
        assert.deepEqual(all, [...all].sort(), 'in name order');
        assert.equal(new Set(all).size, all.length, 'each object once');
        for (const n of all) assert.ok(isObjectName(n), `only object names are listed, not ${JSON.stringify(n)}`);
      }
    });

    it('deletes an object, and resolves when deleting one that does not exist', async () => {
      const p = freshPrefix();
      await store.put(`${p}/gone`, Readable.from([Buffer.from('bytes to delete')]));
      await store.put(`${p}/kept`, Readable.from([Buffer.from('bytes to keep')]));

      await store.delete(`${p}/gone`);

      await rejectsWith(store.get(`${p}/gone`), 'RESUME_ERR_BLOB_NOT_FOUND', 404);
      assert.deepEqual(await namesListed(store, `${p}/`), [`${p}/kept`]);
      assert.equal((await contentOf(store, `${p}/kept`)).toString(), 'bytes to keep');
      await store.delete(`${p}/gone`);
      await store.delete(`${freshPrefix()}/never-stored`);

      await store.delete(`${p}/kept`);
      assert.deepEqual(await namesListed(store, `${p}/`), []);
      // Deleting the last object under a prefix does not stop new writes there.
      await store.put(`${p}/again`, Readable.from([Buffer.from('again')]));
      assert.equal((await contentOf(store, `${p}/again`)).toString(), 'again');
    });

    it('keeps working after readers stop early and destroy their bodies', { timeout: 120_000 }, async () => {
      const p = freshPrefix();
      const data = randomBytes(4 * MiB);
      await store.put(`${p}/read-me`, Readable.from([data]));

      // More early stops than any pool or socket limit a backend is likely to have: a reader that
      // leaked its connection would make the later reads and writes wait forever.
      for (let i = 0; i < 25; i++) {
        const { body } = await store.get(`${p}/read-me`);
        const pieces = body[Symbol.asyncIterator]();
        const first = await pieces.next();
        assert.equal(first.done, false);
        body.destroy();
        if (!body.closed) await once(body, 'close');
      }

      assert.deepEqual(await contentOf(store, `${p}/read-me`), data);
      const more = randomBytes(MiB);
      await store.put(`${p}/after`, Readable.from([more]));
      assert.deepEqual(await contentOf(store, `${p}/after`), more);
      await store.delete(`${p}/read-me`);
      assert.deepEqual(await namesListed(store, `${p}/`), [`${p}/after`]);
    });

    it('stores two objects written at the same time, each with its own bytes', { timeout: 60_000 }, async () => {
      const p = freshPrefix();
      const one = randomStream(6 * MiB + 1);
      const two = randomStream(5 * MiB + 7);

      const [first, second] = await Promise.all([store.put(`${p}/one`, one.body), store.put(`${p}/two`, two.body)]);

      assert.deepEqual(first, { name: `${p}/one`, bytes: 6 * MiB + 1, sha256: await one.sha256 });
      assert.deepEqual(second, { name: `${p}/two`, bytes: 5 * MiB + 7, sha256: await two.sha256 });
      assert.equal(sha256Of(await contentOf(store, `${p}/one`)), first.sha256);
      assert.equal(sha256Of(await contentOf(store, `${p}/two`)), second.sha256);
      assert.deepEqual(await namesListed(store, `${p}/`), [`${p}/one`, `${p}/two`]);
    });

    it('sweeps only leftovers of interrupted writes: complete objects stay, and it answers a count', async () => {
      const p = freshPrefix();
      const data = randomBytes(300_000);
      const written = await store.put(`${p}/complete`, Readable.from([data]));

      const swept = await store.sweepIncomplete(new Date(Date.now() + 60_000));

      assert.ok(Number.isInteger(swept) && swept >= 0, `a count of removed leftovers, not ${swept}`);
      assert.deepEqual(await namesListed(store, `${p}/`), [written.name]);
      assert.deepEqual(await contentOf(store, written.name), data);
      assert.equal(await store.sweepIncomplete(new Date(0)), 0, 'nothing began before 1970');
    });
  });
}

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { isResumeError, type ResumeError } from '../../../src/errors.js';
import { S3ObjectStore } from '../../../src/store/s3/s3-object-store.js';
import { s3StoreOptions, startS3Server, type StartedS3Server } from '../../fixtures/s3-server.js';
import { waitFor } from '../../fixtures/wait-for.js';
import { collect, randomStream } from '../../fixtures/byte-streams.js';
import { objectStoreContract } from './object-store-contract.js';

const MiB = 1024 * 1024;
/** The smallest part S3 allows, so that a few MiB make a multipart upload. */
const PART = 5 * MiB;

function rawClient(s3: StartedS3Server): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

const freshPrefix = (what: string) => `${what}-${randomBytes(4).toString('hex')}/`;

/** Unfinished multipart uploads whose key starts with `prefix` (listed bucket-wide: see sweepIncomplete). */
async function uploadsUnder(client: S3Client, bucket: string, prefix: string): Promise<Array<{ key: string; uploadId: string }>> {
  const { Uploads = [] } = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return Uploads.filter((u) => u.Key?.startsWith(prefix)).map((u) => ({ key: u.Key ?? '', uploadId: u.UploadId ?? '' }));
}

async function rejection(promise: Promise<unknown>): Promise<ResumeError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isResumeError(err), `expected a ResumeError, got ${inspect(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

/** Everything an operator or API client could see of an error, its causes included. */
const everything = (err: ResumeError) => `${inspect(err, { depth: 20 })}\n${JSON.stringify(err.toJSON())}\n${JSON.stringify(err.context)}`;

describe('S3ObjectStore', () => {
  let s3: StartedS3Server;
  let client: S3Client;
  before(async () => {
    s3 = await startS3Server();
    client = rawClient(s3);
  });
  after(async () => {
    client?.destroy();
    await s3?.stop();
  });

  objectStoreContract('S3ObjectStore', async () => {
    const store = await S3ObjectStore.open(s3StoreOptions(s3, freshPrefix('contract')));
    return {
      store,
      cleanup: async () => {
        for await (const { name } of store.list()) await store.delete(name);
        await store.close();
      },
    };
  });

  it('streams a multipart object in and back byte for byte, with the sha256 computed on the way', async () => {
    const store = await S3ObjectStore.open({ ...s3StoreOptions(s3, freshPrefix('multipart')), partBytes: PART });
    try {
      const total = 2 * PART + 123_457; // three parts, the last a short one
      const { body, sha256 } = randomStream(total);
      const written = await store.put('sessions/s1/big', body);
      assert.deepEqual(written, { name: 'sessions/s1/big', bytes: total, sha256: await sha256 });
      const read = await store.get('sessions/s1/big');
      assert.equal(read.bytes, total);
      const bytes = await collect(read.body);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), written.sha256);
    } finally {
      await store.close();
    }
  });

  it('leaves no object and no multipart upload when the body fails after two parts were uploaded', async () => {
    const prefix = freshPrefix('interrupted');
    const store = await S3ObjectStore.open({ ...s3StoreOptions(s3, prefix), partBytes: PART });
    try {
      let sent = 0;
      let failing = false;
      const body = new Readable({
        read() {
          if (sent < 2 * PART + MiB) {
            sent += 64 * 1024;
            this.push(randomBytes(64 * 1024));
            return;
          }
          if (failing) return;
          failing = true;
          // Fail only once the server holds two parts of this upload.
          void waitFor('two uploaded parts', async () => {
            const [upload] = await uploadsUnder(client, s3.bucket, prefix);
            if (upload === undefined) return false;
            const { Parts = [] } = await client.send(
              new ListPartsCommand({ Bucket: s3.bucket, Key: upload.key, UploadId: upload.uploadId }),
            );
            return Parts.length >= 2;
          }).then(
            () => this.destroy(new Error('client went away')),
            (err: Error) => this.destroy(err),
          );
        },
      });
      const err = await rejection(store.put('sessions/s1/cut', body));
      assert.equal(err.code, 'RESUME_ERR_BLOB_UPLOAD_ABORTED');
      assert.equal(err.status, 400);
      assert.equal((err.cause as Error).message, 'client went away');

      assert.deepEqual(await uploadsUnder(client, s3.bucket, prefix), [], 'the Upload aborts its multipart upload');
      assert.equal(await store.sweepIncomplete(new Date(Date.now() + 60_000)), 0);
      assert.deepEqual(await uploadsUnder(client, s3.bucket, prefix), []);
      const listed = [];
      for await (const info of store.list()) listed.push(info);
      assert.deepEqual(listed, []);
      assert.equal((await rejection(store.get('sessions/s1/cut'))).code, 'RESUME_ERR_BLOB_NOT_FOUND');
    } finally {
      await store.close();
    }
  });

  it('sweepIncomplete aborts the uploads a crashed writer left under its prefix, begun before the cutoff', async () => {
    const prefix = freshPrefix('crashed');
    const otherPrefix = freshPrefix('other');
    const store = await S3ObjectStore.open(s3StoreOptions(s3, prefix));
    try {
      const before = new Date(Date.now() - 60_000);
      const begin = async (key: string) => {
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
        await client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId, PartNumber: 1, Body: randomBytes(1024) }));
      };
      await begin(`${prefix}sessions/s1/a`);
      await begin(`${prefix}sessions/s2/b`);
      await begin(`${otherPrefix}sessions/s1/a`);

      assert.equal(await store.sweepIncomplete(before), 0, 'uploads begun after the cutoff may still be running');
      assert.equal((await uploadsUnder(client, s3.bucket, prefix)).length, 2);

      assert.equal(await store.sweepIncomplete(new Date(Date.now() + 60_000)), 2);
      assert.deepEqual(await uploadsUnder(client, s3.bucket, prefix), []);
      assert.equal((await uploadsUnder(client, s3.bucket, otherPrefix)).length, 1, 'another prefix is not ours to sweep');
      assert.equal(await store.sweepIncomplete(new Date(Date.now() + 60_000)), 0);
    } finally {
      const other = await S3ObjectStore.open(s3StoreOptions(s3, otherPrefix));
      await other.sweepIncomplete(new Date(Date.now() + 60_000));
      await other.close();
      await store.close();
    }
  });

  it('open() fails with RESUME_ERR_STORE_UNAVAILABLE naming a missing bucket and its endpoint', async () => {
    const err = await rejection(S3ObjectStore.open({ ...s3StoreOptions(s3, ''), bucket: 'no-such-bucket' }));
    assert.equal(err.code, 'RESUME_ERR_STORE_UNAVAILABLE');
    assert.equal(err.status, 503);
    assert.match(err.message, /"no-such-bucket"/);
    assert.ok(err.message.includes(s3.endpoint), err.message);
    assert.match(err.hint ?? '', /Create bucket "no-such-bucket"/);
    assert.deepEqual({ bucket: err.context.bucket, endpoint: err.context.endpoint }, { bucket: 'no-such-bucket', endpoint: s3.endpoint });
    assert.ok(!everything(err).includes(s3.secretAccessKey), 'no secret in the error');
  });

  it('open() fails with RESUME_ERR_STORE_UNAVAILABLE when the credentials are refused, without showing the secret', async () => {
    const wrongSecret = randomBytes(24).toString('hex');
    const err = await rejection(
      S3ObjectStore.open({ ...s3StoreOptions(s3, ''), credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: wrongSecret } }),
    );
    assert.equal(err.code, 'RESUME_ERR_STORE_UNAVAILABLE');
    assert.match(err.hint ?? '', /credentials were refused/);
    assert.ok(!everything(err).includes(wrongSecret), 'no secret in the error');
  });

  describe('when the server is stopped', () => {
    let gone: StartedS3Server;
    let store: S3ObjectStore;
    before(async () => {
      gone = await startS3Server({ bucket: 'soon-gone' });
      store = await S3ObjectStore.open({ ...s3StoreOptions(gone, 'stopped/'), partBytes: PART });
      await store.put('sessions/s1/kept', Readable.from([Buffer.from('kept')]));
      await gone.stop();
    });
    after(async () => {
      await store?.close();
      await gone?.stop();
    });

    it('open() fails with RESUME_ERR_STORE_UNAVAILABLE naming the bucket and endpoint', async () => {
      const err = await rejection(S3ObjectStore.open(s3StoreOptions(gone, '')));
      assert.equal(err.code, 'RESUME_ERR_STORE_UNAVAILABLE');
      assert.equal(err.status, 503);
      assert.match(err.message, /"soon-gone"/);
      assert.ok(err.message.includes(gone.endpoint), err.message);
      assert.match(err.hint ?? '', /running and reachable/);
      assert.equal(err.context.s3Error, 'ECONNREFUSED');
      assert.ok(!everything(err).includes(gone.secretAccessKey), 'no secret in the error');
    });

    it('put() fails with RESUME_ERR_STORE_UNAVAILABLE and leaves the body undestroyed', async () => {
      const { body } = randomStream(4 * PART);
      const err = await rejection(store.put('sessions/s1/late', body));
      assert.equal(err.code, 'RESUME_ERR_STORE_UNAVAILABLE');
      assert.ok(!everything(err).includes(gone.secretAccessKey), 'no secret in the error');
      assert.equal(body.destroyed, false);
      // The caller can still read (or drain) the rest.
      const rest = await collect(body);
      assert.ok(rest.length > 0 && rest.length < 4 * PART, `rest: ${rest.length} bytes`);
    });

    it('get(), list() and sweepIncomplete() fail with RESUME_ERR_STORE_UNAVAILABLE', async () => {
      assert.equal((await rejection(store.get('sessions/s1/kept'))).code, 'RESUME_ERR_STORE_UNAVAILABLE');
      assert.equal((await rejection(store.delete('sessions/s1/kept'))).code, 'RESUME_ERR_STORE_UNAVAILABLE');
      assert.equal((await rejection(store.sweepIncomplete(new Date()))).code, 'RESUME_ERR_STORE_UNAVAILABLE');
      const listing = (async () => {
        for await (const info of store.list()) void info;
      })();
      assert.equal((await rejection(listing)).code, 'RESUME_ERR_STORE_UNAVAILABLE');
    });
  });
});

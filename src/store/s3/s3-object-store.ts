/**
 * ObjectStore in an S3 bucket (AWS S3 or any S3-compatible server: MinIO, Ceph RGW, …): one object
 * per name, under the key `prefix + name`.
 *
 * Writing streams the body through a DigestStream into a multipart upload (lib-storage `Upload`),
 * so memory stays at a few parts whatever the object's size, and size and sha256 are computed
 * locally on the way. S3 makes an object visible only when its upload completes, which gives the
 * contract's "nothing visible until complete" for free; an upload the process could not complete
 * or abort (a crash, the server gone) stays as an unfinished multipart upload until
 * `sweepIncomplete` aborts it. A lifecycle rule `AbortIncompleteMultipartUpload` on the bucket is
 * a good second net, but the service does not rely on one.
 *
 * Every S3 failure becomes RESUME_ERR_STORE_UNAVAILABLE (503) naming the bucket and endpoint, with
 * a hint for the likely cause; credentials never appear in messages, hints or context.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ResumeError, type ErrorContext } from '../../errors.js';
import type { Logger } from '../../log.js';
import { DigestStream } from '../digest-stream.js';
import { bodyPieces } from '../upload-body.js';
import {
  assertObjectName,
  isObjectName,
  objectNotFound,
  type ObjectInfo,
  type ObjectStore,
  type WrittenObject,
} from '../object-store.js';

const MiB = 1024 * 1024;

/** Default bytes per multipart part: 16 MiB parts allow objects up to ~156 GiB (10,000 parts). */
export const S3_PART_BYTES = 16 * MiB;

/** S3's limits on a part that is not the last one. */
const MIN_PART_BYTES = 5 * MiB;
const MAX_PART_BYTES = 5 * 1024 * MiB;

/**
 * Parts uploaded at once. Memory per `put` is about (UPLOAD_QUEUE + 1) × partBytes: the parts in
 * flight plus the one being filled.
 */
const UPLOAD_QUEUE = 2;

export type S3ObjectStoreOptions = {
  bucket: string;
  /** Key prefix inside the bucket, e.g. `jupyterhub-resume/` (default none). Keys are `prefix + name`. */
  prefix?: string;
  /** An S3-compatible server, e.g. `http://127.0.0.1:9000` (default: AWS S3 of `region`). */
  endpoint?: string;
  /** Default: `us-east-1` with an `endpoint`, else the SDK's chain (`AWS_REGION`, profile). */
  region?: string;
  /** Bucket in the path, not the host name (default: true with an `endpoint`, as most S3-compatible servers need). */
  forcePathStyle?: boolean;
  /** Default: the AWS SDK's default chain (environment, profile, web identity, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Bytes per multipart part, 5 MiB to 5 GiB (default 16 MiB). */
  partBytes?: number;
  logger?: Logger;
};

/** S3 implementation of ObjectStore. */
export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partBytes: number;
  private readonly logger: Logger | undefined;
  /** Where, for messages and logs: bucket and endpoint, never credentials. */
  private readonly where: { bucket: string; endpoint: string };
  private closed = false;

  /**
   * Makes the client; nothing is sent until the first call. Prefer `S3ObjectStore.open`, which
   * also checks that the bucket is reachable.
   * @throws ResumeError RESUME_ERR_CONFIG_INVALID for an endpoint that is not a URL or a part size
   *   outside S3's limits.
   */
  constructor(options: S3ObjectStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    this.partBytes = options.partBytes ?? S3_PART_BYTES;
    this.logger = options.logger;
    if (!Number.isInteger(this.partBytes) || this.partBytes < MIN_PART_BYTES || this.partBytes > MAX_PART_BYTES) {
      throw new ResumeError('RESUME_ERR_CONFIG_INVALID', `S3 part size ${this.partBytes} is outside 5 MiB..5 GiB`, {
        status: 500,
        hint: 'S3 refuses parts (other than the last) smaller than 5 MiB; leave partBytes unset for 16 MiB.',
      });
    }
    const region = options.region ?? (options.endpoint === undefined ? undefined : 'us-east-1');
    this.where = {
      bucket: this.bucket,
      endpoint: options.endpoint === undefined ? `AWS S3 (${region ?? 'region from the environment'})` : publicUrl(options.endpoint),
    };
    const config: S3ClientConfig = {
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      // Without it a black-holed endpoint hangs every call for the OS's TCP timeout (minutes).
      requestHandler: { connectionTimeout: 5_000 },
    };
    if (region !== undefined) config.region = region;
    if (options.endpoint !== undefined) config.endpoint = options.endpoint;
    if (options.credentials !== undefined) config.credentials = { ...options.credentials };
    this.client = new S3Client(config);
  }

  /**
   * Makes a store and checks that its bucket answers (HeadBucket), so a wrong bucket, endpoint or
   * credentials fail at startup rather than at the first checkpoint.
   * @throws ResumeError RESUME_ERR_STORE_UNAVAILABLE (503) naming the bucket and endpoint.
   */
  static async open(options: S3ObjectStoreOptions): Promise<S3ObjectStore> {
    const store = new S3ObjectStore(options);
    try {
      await store.client.send(new HeadBucketCommand({ Bucket: store.bucket }));
    } catch (err) {
      await store.close();
      throw store.unavailable(err, 'check the bucket');
    }
    return store;
  }

  async put(name: string, body: Readable): Promise<WrittenObject> {
    assertObjectName(name);
    const digest = new DigestStream();
    let bodyFailure: unknown;
    // The Upload reads (and on failure destroys) `digest`, never the caller's body: bodyPieces
    // leaves the body as it was, whatever fails.
    const pieces = bodyPieces(body, { object: name });
    const noting = async function* (): AsyncGenerator<Buffer> {
      try {
        yield* pieces;
      } catch (cause) {
        bodyFailure ??= cause; // a bad upload (400), not a failing store (503)
        throw cause;
      }
    };
    const feeding = pipeline(Readable.from(noting(), { objectMode: false }), digest).then(
      () => undefined,
      (err: unknown) => err,
    );
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.prefix + name, Body: digest },
      partSize: this.partBytes,
      queueSize: UPLOAD_QUEUE,
      // The default: on any failure the Upload aborts its multipart upload itself.
      leavePartsOnError: false,
    });
    let uploadFailure: unknown;
    try {
      await upload.done();
    } catch (err) {
      uploadFailure = err;
      // Stops the feeding pipeline if the Upload gave up without reading `digest` to its end.
      digest.destroy();
    }
    const feedFailure = await feeding;
    if (bodyFailure !== undefined) throw bodyFailure;
    if (uploadFailure !== undefined || feedFailure !== undefined) {
      throw this.unavailable(uploadFailure ?? feedFailure, 'store the object', name);
    }
    this.logger?.debug({ object: name, bytes: digest.bytes, bucket: this.bucket }, 'object stored');
    return { name, bytes: digest.bytes, sha256: digest.sha256 };
  }

  async get(name: string): Promise<{ bytes: number; body: Readable }> {
    assertObjectName(name);
    try {
      const found = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + name }));
      // In Node the SDK's body is the http.IncomingMessage (a Readable) with helper methods mixed in.
      if (!(found.Body instanceof Readable) || found.ContentLength === undefined) {
        (found.Body as { destroy?: () => void } | undefined)?.destroy?.();
        throw new Error('GetObject answered without a body stream or Content-Length');
      }
      return { bytes: found.ContentLength, body: found.Body };
    } catch (err) {
      if (isS3Error(err, 'NoSuchKey')) throw objectNotFound(name);
      throw this.unavailable(err, 'read the object', name);
    }
  }

  async delete(name: string): Promise<void> {
    assertObjectName(name);
    try {
      // S3 answers 204 for a key that does not exist: deleting twice is not an error there either.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + name }));
    } catch (err) {
      throw this.unavailable(err, 'delete the object', name);
    }
  }

  /**
   * Pages through ListObjectsV2. S3 returns keys in UTF-8 byte order, which for object names
   * (ASCII) is name order. Keys under the prefix that are not object names (someone else's files)
   * are skipped.
   */
  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    // MinIO refuses a prefix with ".." (400 XMinioInvalidResourceName); no name starts with one anyway.
    if (!isNamePrefix(prefix)) return;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw this.unavailable(err, 'list objects');
      }
      for (const entry of page.Contents ?? []) {
        const name = entry.Key?.slice(this.prefix.length);
        if (name === undefined || !isObjectName(name)) continue;
        yield { name, bytes: entry.Size ?? 0, modifiedAt: entry.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /**
   * Aborts the unfinished multipart uploads under the prefix that began before `startedBefore`
   * (by the server's clock). Uploads in progress must have begun later, or they fail.
   *
   * Lists every upload of the bucket and filters by prefix here: MinIO answers ListMultipartUploads
   * with a `Prefix` only when it is a whole key (minio/minio#20989, "working as intended").
   */
  async sweepIncomplete(startedBefore: Date): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (err) {
        throw this.unavailable(err, 'list unfinished uploads');
      }
      for (const upload of page.Uploads ?? []) {
        const { Key: key, UploadId: uploadId, Initiated: initiated } = upload;
        if (key === undefined || uploadId === undefined || !key.startsWith(this.prefix)) continue;
        if (initiated === undefined || initiated >= startedBefore) continue;
        try {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
          removed++;
        } catch (err) {
          // Another sweeper (or the upload's own failure handling) got there first.
          if (isS3Error(err, 'NoSuchUpload')) continue;
          throw this.unavailable(err, 'abort an unfinished upload', key.slice(this.prefix.length));
        }
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    if (removed > 0) this.logger?.info({ ...this.where, removed }, 'aborted unfinished multipart uploads');
    return removed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
  }

  /** RESUME_ERR_STORE_UNAVAILABLE for an S3 failure, with a hint for its likely cause. */
  private unavailable(err: unknown, doing: string, name?: string): ResumeError {
    if (err instanceof ResumeError) return err;
    const { bucket, endpoint } = this.where;
    const context: ErrorContext = { ...this.where, ...(name === undefined ? {} : { object: name }), s3Error: errorName(err) };
    const status = httpStatus(err);
    if (status !== undefined) context.httpStatus = status;
    return new ResumeError(
      'RESUME_ERR_STORE_UNAVAILABLE',
      `could not ${doing} in bucket ${JSON.stringify(bucket)} at ${endpoint}: ${describe(err)}`,
      { status: 503, hint: hintFor(err, bucket, endpoint), context, cause: err },
    );
  }
}

/**
 * True when some object name starts with `prefix`: the empty prefix, a name, or a name cut short
 * (mid-segment it is itself a name; just after a "/" it is one once a letter is added).
 */
function isNamePrefix(prefix: string): boolean {
  return prefix === '' || isObjectName(prefix) || isObjectName(`${prefix}a`);
}

/** The SDK's error name (`NoSuchBucket`, `AccessDenied`, …) or a Node error code (`ECONNREFUSED`). */
function errorName(err: unknown): string {
  if (!(err instanceof Error)) return typeof err;
  const code = (err as NodeJS.ErrnoException).code;
  // Service errors are named by their S3 code; network errors (also AggregateError) carry a `code`.
  return typeof code === 'string' && httpStatus(err) === undefined ? code : err.name;
}

function httpStatus(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

function isS3Error(err: unknown, name: string): boolean {
  return err instanceof Error && err.name === name && httpStatus(err) !== undefined;
}

/** One line about an S3 or network failure. SDK messages carry no credentials (only key ids in some errors). */
function describe(err: unknown): string {
  const name = errorName(err);
  const status = httpStatus(err);
  // HEAD answers have no body, so the SDK can only name them by status (`NotFound`, `Forbidden`, or `UnknownError`).
  if (status === 404 && (name === 'NotFound' || name === 'UnknownError')) return 'the bucket does not exist (404)';
  if (status === 403 && (name === 'Forbidden' || name === 'UnknownError')) return 'access denied (403)';
  const message = err instanceof Error ? err.message : String(err);
  return status === undefined ? `${name}: ${message}` : `${name} (${status}): ${message}`;
}

function hintFor(err: unknown, bucket: string, endpoint: string): string {
  const name = errorName(err);
  const status = httpStatus(err);
  if (name === 'NoSuchBucket' || (status === 404 && (name === 'NotFound' || name === 'UnknownError'))) {
    return `Create bucket ${JSON.stringify(bucket)} at ${endpoint}, or fix the bucket name in the store settings.`;
  }
  if (status === 403 || ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(name)) {
    return `The credentials were refused: check the access key and secret, and that they may read, write, list and delete in bucket ${JSON.stringify(bucket)}.`;
  }
  if (status === undefined) {
    return `Check that the S3 endpoint ${endpoint} is running and reachable from the service; retry once it is back.`;
  }
  return `The S3 server at ${endpoint} refused the request; read its log for bucket ${JSON.stringify(bucket)}, and retry.`;
}

/** The endpoint as it may appear in messages: no user info, no query string. */
function publicUrl(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ResumeError('RESUME_ERR_CONFIG_INVALID', 'the S3 endpoint is not a URL', {
      status: 500,
      hint: 'Set the endpoint to the server\'s base URL, e.g. http://127.0.0.1:9000.',
    });
  }
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/**
 * Opens the object store the configuration names (RESUME_BLOB_STORE), checking that it is usable
 * before the service accepts its first checkpoint: a wrong directory or bucket fails start-up with
 * a message that names it, not the first cull an hour later.
 */
import type pg from 'pg';
import type { Config } from '../config/config-schema.js';
import type { Logger } from '../log.js';
import { FsObjectStore } from './filesystem/fs-object-store.js';
import type { ObjectStore } from './object-store.js';
import { PgObjectStore } from './postgres/pg-object-store.js';
import { S3ObjectStore } from './s3/s3-object-store.js';

export async function openObjectStore(
  config: Pick<Config, 'blobStore' | 'blobDir' | 's3Bucket' | 's3Endpoint' | 's3Region' | 's3Prefix'>,
  pool: pg.Pool,
  logger: Logger,
): Promise<ObjectStore> {
  switch (config.blobStore) {
    case 'postgres':
      return new PgObjectStore(pool, { logger });
    case 'filesystem':
      // The schema requires blobDir for this store.
      return FsObjectStore.open({ dir: config.blobDir as string, logger });
    case 's3':
      return S3ObjectStore.open({
        bucket: config.s3Bucket as string,
        prefix: config.s3Prefix,
        ...(config.s3Region === undefined ? {} : { region: config.s3Region }),
        ...(config.s3Endpoint === undefined ? {} : { endpoint: config.s3Endpoint, forcePathStyle: true }),
        logger,
      });
  }
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/load-config.js';
import { isResumeError } from '../../../src/errors.js';

const HUB_ENV = {
  JUPYTERHUB_API_URL: 'http://127.0.0.1:8081/hub/api',
  JUPYTERHUB_API_TOKEN: 'service-token-0123456789',
  DATABASE_URL: 'postgres://resume@127.0.0.1:5432/resume',
};

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isResumeError(e));
    assert.equal(e.code, 'RESUME_ERR_CONFIG_INVALID');
    return e.message;
  }
  assert.fail('expected a configuration error');
}

describe('loadConfig', () => {
  it('reads the variables a hub gives a service and fills in defaults', () => {
    const config = loadConfig({ ...HUB_ENV, JUPYTERHUB_SERVICE_PREFIX: '/services/resume/' });
    assert.equal(config.hubApiUrl, 'http://127.0.0.1:8081/hub/api');
    assert.equal(config.cullTimeoutS, 3600);
    assert.equal(config.cullEveryS, 300);
    assert.equal(config.cullOnCheckpointFailure, false);
    assert.equal(config.agentUrl, 'http://127.0.0.1:10101/services/resume/');
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 10101 });
    assert.ok(Object.isFrozen(config));
  });

  it('keeps blobs in Postgres, three checkpoints a session for 30 days, with no quota, by default', () => {
    const config = loadConfig(HUB_ENV);
    assert.equal(config.blobStore, 'postgres');
    assert.deepEqual([config.keepCheckpoints, config.keepDays, config.userQuotaMb], [3, 30, undefined]);
    assert.deepEqual([config.backgroundCheckpoints, config.backgroundIdleS], [true, 180]);
  });

  it('asks for the directory or the bucket the chosen blob store needs, naming the setting', () => {
    assert.match(configError(() => loadConfig({ ...HUB_ENV, RESUME_BLOB_STORE: 'filesystem' })), /RESUME_BLOB_DIR \(or --blob-dir\) is required when RESUME_BLOB_STORE is filesystem/);
    assert.match(configError(() => loadConfig({ ...HUB_ENV, RESUME_BLOB_STORE: 's3' })), /RESUME_S3_BUCKET \(or --s3-bucket\) is required when RESUME_BLOB_STORE is s3/);
    assert.match(configError(() => loadConfig({ ...HUB_ENV, RESUME_BLOB_STORE: 'floppy' })), /RESUME_BLOB_STORE must be postgres, filesystem or s3/);
    assert.match(configError(() => loadConfig({ ...HUB_ENV, RESUME_KEEP_CHECKPOINTS: '0' })), /RESUME_KEEP_CHECKPOINTS must be at least 1/);
    const s3 = loadConfig({ ...HUB_ENV, RESUME_BLOB_STORE: 's3', RESUME_S3_BUCKET: 'notebooks', RESUME_S3_ENDPOINT: 'http://127.0.0.1:9000/' });
    assert.deepEqual([s3.s3Bucket, s3.s3Endpoint, s3.s3Prefix, s3.s3Region], ['notebooks', 'http://127.0.0.1:9000', 'jupyterhub-resume/', undefined]);
    // An empty prefix would let garbage collection sweep the whole bucket.
    assert.match(configError(() => loadConfig({ ...HUB_ENV, RESUME_BLOB_STORE: 's3', RESUME_S3_BUCKET: 'notebooks' }, { s3Prefix: '' })), /--s3-prefix must be lowercase segments/);
  });

  it('lets flags win over the environment', () => {
    const config = loadConfig({ ...HUB_ENV, RESUME_CULL_TIMEOUT: '600' }, { cullTimeoutS: '120' });
    assert.equal(config.cullTimeoutS, 120);
    assert.equal(config.cullEveryS, 30);
  });

  it('names every missing required setting in one error', () => {
    const message = configError(() => loadConfig({}));
    assert.match(message, /JUPYTERHUB_API_URL \(or --hub-api-url\) is not set/);
    assert.match(message, /JUPYTERHUB_API_TOKEN \(or --hub-api-token\) is not set/);
    assert.match(message, /DATABASE_URL \(or --database-url\) is not set/);
  });

  it('says which setting is wrong, where it came from, and why', () => {
    const message = configError(() =>
      loadConfig({ ...HUB_ENV, RESUME_CULL_TIMEOUT: 'soon', JUPYTERHUB_SERVICE_PREFIX: 'services/resume' }),
    );
    assert.match(message, /RESUME_CULL_TIMEOUT must be a number of seconds/);
    assert.match(message, /JUPYTERHUB_SERVICE_PREFIX must start and end with "\/"/);
  });

  it('never echoes a secret value in its error', () => {
    const message = configError(() => loadConfig({ ...HUB_ENV, DATABASE_URL: 'mysql://u:hunter2@db/x' }));
    assert.match(message, /DATABASE_URL must be a postgres:\/\/ URL/);
    assert.doesNotMatch(message, /hunter2/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import { isResumeError } from '../../../src/errors.js';
import { BlobGrants } from '../../../src/web/auth/blob-grants.js';

const GRANT = { user: 'alice', runId: 'run-1', checkpointId: 'ckpt-1', action: 'upload' as const };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isResumeError(e));
    return e.code;
  }
  assert.fail('expected the grant to be refused');
}

describe('BlobGrants', () => {
  it('accepts its own grant for the checkpoint and action it names', () => {
    const grants = new BlobGrants({ ttlS: 60 });
    assert.deepEqual(grants.verify(grants.issue(GRANT), { checkpointId: 'ckpt-1', action: 'upload' }), GRANT);
  });

  it('refuses a grant used for another checkpoint or another action', () => {
    const grants = new BlobGrants({ ttlS: 60 });
    const token = grants.issue(GRANT);
    assert.equal(codeOf(() => grants.verify(token, { checkpointId: 'ckpt-2', action: 'upload' })), 'RESUME_ERR_AUTH_GRANT_FORBIDDEN');
    assert.equal(codeOf(() => grants.verify(token, { checkpointId: 'ckpt-1', action: 'download' })), 'RESUME_ERR_AUTH_GRANT_FORBIDDEN');
  });

  it('refuses grants signed by another key, expired, or unsigned', () => {
    const grants = new BlobGrants({ ttlS: 60 });
    const other = new BlobGrants({ ttlS: 60 });
    const expired = new BlobGrants({ secret: 'k'.repeat(32), ttlS: -1 });
    const expiredChecker = new BlobGrants({ secret: 'k'.repeat(32), ttlS: 60 });
    const unsigned = jwt.sign({ run: 'r', ckpt: 'ckpt-1', act: 'upload', sub: 'alice' }, '', { algorithm: 'none' });
    const expect = { checkpointId: 'ckpt-1', action: 'upload' as const };
    assert.equal(codeOf(() => grants.verify(other.issue(GRANT), expect)), 'RESUME_ERR_AUTH_GRANT_INVALID');
    assert.equal(codeOf(() => expiredChecker.verify(expired.issue(GRANT), expect)), 'RESUME_ERR_AUTH_GRANT_INVALID');
    assert.equal(codeOf(() => grants.verify(unsigned, expect)), 'RESUME_ERR_AUTH_GRANT_INVALID');
  });
});

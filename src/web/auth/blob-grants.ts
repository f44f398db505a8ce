import { randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import { ResumeError } from '../../errors.js';

/** What a grant allows: writing a checkpoint's blobs, or reading them back. */
export type GrantAction = 'upload' | 'download';

/** The claims of a blob grant: one user, one kernel run, one checkpoint, one action. */
export type BlobGrant = {
  user: string;
  runId: string;
  checkpointId: string;
  action: GrantAction;
};

const claimsSchema = z.object({
  sub: z.string(),
  run: z.string(),
  ckpt: z.string(),
  act: z.enum(['upload', 'download']),
});

const AUDIENCE = 'jupyterhub-resume:blobs';

/**
 * Issues and checks the short-lived JWTs an agent presents to upload or download checkpoint blobs.
 *
 * #### Notes
 * A grant is bound to user + kernel run + checkpoint + action, so a token leaked from one kernel
 * cannot read another user's data or write into another checkpoint. HS256 with a key only the
 * service knows; the key is random per process unless configured, which is fine because grants
 * live minutes and are issued right before use.
 */
export class BlobGrants {
  private readonly secret: Buffer | string;
  private readonly ttlS: number;

  constructor(options: { secret?: string; ttlS: number }) {
    this.secret = options.secret ?? randomBytes(32);
    this.ttlS = options.ttlS;
  }

  /**
   * @param options.minTtlS keep the grant valid at least this long (a checkpoint allowed to run
   *   longer than the configured lifetime must not lose its grant half way).
   * @returns a signed grant.
   */
  issue(grant: BlobGrant, options: { minTtlS?: number } = {}): string {
    return jwt.sign({ run: grant.runId, ckpt: grant.checkpointId, act: grant.action }, this.secret, {
      algorithm: 'HS256',
      subject: grant.user,
      audience: AUDIENCE,
      expiresIn: Math.ceil(Math.max(this.ttlS, options.minTtlS ?? 0)),
    });
  }

  /**
   * Verifies a grant's signature, expiry and that it allows `action` on `checkpointId`.
   * @throws ResumeError RESUME_ERR_AUTH_GRANT_INVALID (401) or RESUME_ERR_AUTH_GRANT_FORBIDDEN (403).
   */
  verify(token: string, expected: { checkpointId: string; action: GrantAction }): BlobGrant {
    let decoded: unknown;
    try {
      decoded = jwt.verify(token, this.secret, { algorithms: ['HS256'], audience: AUDIENCE });
    } catch (e) {
      const expired = e instanceof jwt.TokenExpiredError;
      throw new ResumeError(
        'RESUME_ERR_AUTH_GRANT_INVALID',
        expired ? 'The blob grant has expired.' : 'The blob grant is not valid.',
        { status: 401, hint: 'Ask the service for a new grant; grants are short-lived and single-purpose.' },
      );
    }
    const claims = claimsSchema.safeParse(decoded);
    if (!claims.success) {
      throw new ResumeError('RESUME_ERR_AUTH_GRANT_INVALID', 'The blob grant is missing claims.', { status: 401 });
    }
    const { sub, run, ckpt, act } = claims.data;
    if (ckpt !== expected.checkpointId || act !== expected.action) {
      throw new ResumeError(
        'RESUME_ERR_AUTH_GRANT_FORBIDDEN',
        `This grant does not allow ${expected.action} for checkpoint ${expected.checkpointId}.`,
        { status: 403, context: { user: sub, runId: run, checkpointId: expected.checkpointId } },
      );
    }
    return { user: sub, runId: run, checkpointId: ckpt, action: act };
  }
}

import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ResumeError } from '../../errors.js';
import type { HubClient, TokenOwner } from '../../hub/hub-client.js';

/** Who is calling: the owner of a hub token, as the hub describes it. */
export type Identity = TokenOwner;

/**
 * Resolves hub tokens to identities through the hub (`GET /hub/api/user`), with a short cache.
 *
 * #### Notes
 * The cache is keyed by a hash of the token (never the token itself) and entries live at most
 * `maxAgeMs` (default one minute): the hub can revoke a token or a scope at any time, and
 * JupyterHub's own HubAuth caches for at most five minutes for the same reason.
 */
export class HubIdentities {
  private readonly cache = new Map<string, { identity: Identity; until: number }>();
  private readonly hub: HubClient;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(options: { hub: HubClient; maxAgeMs?: number; now?: () => number }) {
    this.hub = options.hub;
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  /** @throws ResumeError RESUME_ERR_AUTH_INVALID_TOKEN when the hub does not know the token. */
  async resolve(token: string): Promise<Identity> {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = this.cache.get(key);
    const now = this.now();
    if (hit !== undefined && hit.until > now) return hit.identity;
    const identity = await this.hub.whoami(token);
    if (this.cache.size > 10_000) this.cache.clear(); // bounded: a flood of tokens must not grow memory
    this.cache.set(key, { identity, until: now + this.maxAgeMs });
    return identity;
  }
}

/**
 * Reads a token from the Authorization header (`token X` or `Bearer X`, as the hub accepts).
 * Tokens in query strings are deliberately ignored: URLs end up in logs and browser history.
 */
export function tokenFromHeader(req: Request): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const match = /^(?:token|bearer)\s+(\S+)$/i.exec(header.trim());
  return match?.[1] ?? null;
}

/** The identity `authenticate` attached to this request. */
export function identityOf(res: Response): Identity {
  const identity = res.locals['identity'] as Identity | undefined;
  if (identity === undefined) throw new Error('identityOf() used on a route without authenticate()');
  return identity;
}

/**
 * Whether the caller may see every user's checkpoints: decided by a scope the token carries
 * (`admin:servers`, unfiltered, which hub admins hold), not by the user model's `admin` flag, so a
 * token an admin scoped down for a script does not keep admin powers here.
 */
export function isAdmin(identity: Identity): boolean {
  return identity.scopes.includes('admin:servers');
}

/** Express middleware: resolves the caller's hub token, or answers 401. */
export function authenticate(identities: HubIdentities) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const token = tokenFromHeader(req);
    if (token === null) {
      throw new ResumeError('RESUME_ERR_AUTH_MISSING_TOKEN', 'This endpoint needs a JupyterHub token.', {
        status: 401,
        hint: 'Send it in the header "Authorization: token <your hub API token>".',
      });
    }
    res.locals['identity'] = await identities.resolve(token);
    next();
  };
}

/** Only a user server's own token (what the agent sends) may call agent endpoints. */
export function requireServerToken(_req: Request, res: Response, next: NextFunction): void {
  const identity = identityOf(res);
  if (identity.server === null) {
    throw new ResumeError(
      'RESUME_ERR_AUTH_NOT_A_SERVER',
      'Agent endpoints take the token of a single-user server ($JUPYTERHUB_API_TOKEN inside the server).',
      { status: 403, context: { user: identity.name } },
    );
  }
  next();
}

/**
 * Users reach the API with tokens that may access this service (the hub grants
 * `access:services!service=<name>` through the `user` role hub-config sets); admins always may.
 */
export function requireServiceAccess(serviceName: string) {
  const allowed = new Set(['access:services', `access:services!service=${serviceName}`]);
  return (_req: Request, res: Response, next: NextFunction): void => {
    const identity = identityOf(res);
    if (isAdmin(identity) || identity.scopes.some((s) => allowed.has(s))) {
      next();
      return;
    }
    throw new ResumeError('RESUME_ERR_AUTH_FORBIDDEN', `This token may not use the ${serviceName} service.`, {
      status: 403,
      hint: `Give the user (or token) the scope access:services!service=${serviceName}.`,
      context: { user: identity.name },
    });
  };
}

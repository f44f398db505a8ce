/**
 * The JSON the hub answers with, checked with zod and turned into our types.
 *
 * The schemas accept what JupyterHub 3.x–6.x sends: fields a token may not read are missing
 * (the hub filters the user model by scope), fields added in 5.0 (`full_name`, `full_url`,
 * `token_id`) are optional, unknown fields are ignored, and unknown `pending` values (6.0 adds
 * `rename`) are kept as they are.
 */
import { z } from 'zod';
import { ResumeError } from '../errors.js';
import type { HubServer, HubUser, TokenOwner } from './hub-client.js';

/** An ISO timestamp from the hub (`2026-11-21T19:19:51.082893Z`), or null. */
const timestamp = z
  .string()
  .transform((s) => new Date(s))
  .pipe(z.date())
  .nullish()
  .transform((d) => d ?? null);

const serverModel = z.object({
  name: z.string(),
  ready: z.boolean().optional().default(false),
  pending: z.string().nullish().transform((p) => p ?? null),
  url: z.string().nullish().transform((u) => u ?? ''),
  started: timestamp,
  last_activity: timestamp,
});

const userModel = z.object({
  name: z.string(),
  admin: z.boolean().optional().default(false),
  last_activity: timestamp,
  servers: z.record(z.string(), serverModel).optional(),
});

/** `GET /hub/api/` */
const versionModel = z.object({ version: z.string() });

/** `GET /hub/api/users` with the pagination Accept header (JupyterHub ≥ 2.0). */
const paginatedUsers = z.object({
  items: z.array(z.unknown()),
  _pagination: z
    .object({
      offset: z.number().int().nonnegative(),
      limit: z.number().int().nonnegative(),
      total: z.number().int().nonnegative().optional(),
      next: z
        .object({ offset: z.number().int().nonnegative(), limit: z.number().int().positive() })
        .nullish(),
    })
    .optional(),
});

/** `GET /hub/api/user` */
const ownerModel = z.object({
  kind: z.enum(['user', 'service']),
  name: z.string(),
  admin: z.boolean().optional().default(false),
  scopes: z.array(z.string()).optional().default([]),
});

/** Where the next page starts, or null on the last page. */
export type NextPage = { offset: number; limit: number } | null;

function parse<S extends z.ZodType>(schema: S, json: unknown, what: string): z.output<S> {
  const result = schema.safeParse(json);
  if (!result.success) {
    throw new ResumeError('RESUME_ERR_HUB_RESPONSE_INVALID', `The hub sent an unexpected ${what}: ${z.prettifyError(result.error)}`, {
      status: 502,
      hint: 'Check that JUPYTERHUB_API_URL points at a JupyterHub (3.0 or newer) API, e.g. http://hub:8081/hub/api',
    });
  }
  return result.data;
}

/**
 * Turns a hub user model into a `HubUser`.
 * @param json the parsed response body (or one item of a user list).
 * @returns the user, servers sorted with the default server first, then by name.
 */
export function toHubUser(json: unknown): HubUser {
  const user = parse(userModel, json, 'user model');
  const servers: HubServer[] = Object.entries(user.servers ?? {})
    // The dict key is the server name; the model's own `name` is the same, but the key is what
    // the hub indexes by.
    .map(([name, s]) => ({
      user: user.name,
      name,
      ready: s.ready,
      pending: s.pending,
      url: s.url,
      started: s.started,
      lastActivity: s.last_activity,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { name: user.name, admin: user.admin, lastActivity: user.last_activity, servers };
}

/** The `version` of `GET /hub/api/`. */
export function toVersion(json: unknown): string {
  return parse(versionModel, json, 'version response').version;
}

/**
 * Splits one page of `GET /hub/api/users`, in either shape the hub may answer with.
 * @param json `{items, _pagination}` (JupyterHub ≥ 2.0 with the pagination Accept header) or a bare
 *   list (older hubs, or anything in between that dropped the header).
 * @returns the raw user models and where the next page starts.
 */
export function toUserPage(json: unknown): { items: unknown[]; next: NextPage } {
  if (Array.isArray(json)) return { items: json, next: null };
  const page = parse(paginatedUsers, json, 'user list');
  const next = page._pagination?.next;
  return { items: page.items, next: next ? { offset: next.offset, limit: next.limit } : null };
}

/**
 * The server a token stands for, from its scopes.
 *
 * JupyterHub 5.5 gives a single-user server's `$JUPYTERHUB_API_TOKEN` the `server` role
 * (`users:activity!user`, `access:servers!server`), which `GET /hub/api/user` reports as, for
 * alice's default server:
 * `{"kind": "user", "name": "alice", "admin": false, "scopes": ["access:servers!server=alice/",
 * "read:users:activity!user=alice", "read:users:groups!user=alice", "read:users:name!user=alice",
 * "users:activity!user=alice"], "token_id": "a3", "session_id": null, …}`, and
 * `access:servers!server=alice/exp1` for her server `exp1`. A user's own API token has
 * `access:servers!user=alice` instead, and a server shared with alice (5.0+) appears as
 * `access:servers!server=bob/…`: neither names a server of the token's owner, so neither counts.
 * @param owner the token owner's name.
 * @param scopes the token's scopes.
 * @returns the server name (`''` for the default server), or null if the token is not one server's.
 */
export function serverOfToken(owner: string, scopes: readonly string[]): string | null {
  const prefix = `access:servers!server=${owner}/`;
  const own = scopes.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  // A server token names exactly one server; anything else is not a server's own token.
  return own.length === 1 ? (own[0] as string) : null;
}

/** Turns a `GET /hub/api/user` answer into a `TokenOwner`. */
export function toTokenOwner(json: unknown): TokenOwner {
  const owner = parse(ownerModel, json, 'token owner');
  return {
    kind: owner.kind,
    name: owner.name,
    admin: owner.admin,
    scopes: owner.scopes,
    server: owner.kind === 'user' ? serverOfToken(owner.name, owner.scopes) : null,
  };
}

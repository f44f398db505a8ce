/**
 * What the service needs from JupyterHub's REST API, as one interface.
 *
 * The service only ever talks to the hub through a `HubClient`: `HttpHubClient` is the real one;
 * components take a `HubClient` in their options so that `app.ts` alone picks the implementation.
 * Every method throws `ResumeError` on expected failures (codes `RESUME_ERR_HUB_*`,
 * `RESUME_ERR_AUTH_INVALID_TOKEN`).
 */

/** One server of a user, as the hub's user model describes it (only active servers are listed). */
export type HubServer = {
  /** The user who owns the server. */
  user: string;
  /** The server name: `''` for the default server. */
  name: string;
  /** True once the server answers and is routed by the proxy. */
  ready: boolean;
  /** `'spawn'`, `'stop'`, `'check'` (or another value from newer hubs) while the hub is acting on it. */
  pending: string | null;
  /** The server's path under the public URL, e.g. `/user/alice/` or `/user/alice/exp1/`. */
  url: string;
  started: Date | null;
  lastActivity: Date | null;
};

/** A hub user with the servers the token may read. */
export type HubUser = {
  name: string;
  admin: boolean;
  /** User-level last activity; `null` when never active or when the token lacks `read:users:activity`. */
  lastActivity: Date | null;
  /** Active servers, default first. Empty when none is active *or* the token lacks `read:servers`. */
  servers: HubServer[];
};

/** Filters for `listUsers`: the hub's `state` query (JupyterHub ≥ 1.3). */
export type ListUsersOptions = {
  /** `ready`: a server is ready; `active`: a server is ready or pending; `inactive`: none is. */
  state?: 'ready' | 'active' | 'inactive';
  /** Users per page; the hub caps it at `api_page_max_limit` (default 200). Hub default when unset. */
  pageSize?: number;
};

/** Whom a token belongs to, as `GET /hub/api/user` says. */
export type TokenOwner = {
  /**
   * `user` or `service`. A single-user server's own token is reported by the hub as `user` (its
   * owner); `server` below tells it apart from the user's other tokens.
   */
  kind: 'user' | 'service';
  /** The user or service name. */
  name: string;
  admin: boolean;
  /** The token's scopes, expanded and filtered by the hub (e.g. `access:servers!server=alice/`). */
  scopes: string[];
  /**
   * The name of the server this token *is*: set only for a single-user server's own
   * `$JUPYTERHUB_API_TOKEN`. `''` is the default server, so test with `!== null`, not truthiness.
   */
  server: string | null;
};

/** Deadline and cadence of the `waitFor…` methods. */
export type WaitOptions = {
  timeoutMs: number;
  /** Delay between two polls of the user model; default 250 ms. */
  pollIntervalMs?: number;
};

/** The JupyterHub REST API as the service uses it. */
export interface HubClient {
  /** The hub's version string (`GET /hub/api/`, no authentication). */
  version(): Promise<string>;

  /**
   * Every user, page by page (`_pagination.next` is followed until the end).
   * @param options state filter and page size.
   */
  listUsers(options?: ListUsersOptions): AsyncIterable<HubUser>;

  /** One user, or `null` if the hub has no such user. */
  getUser(name: string): Promise<HubUser | null>;

  /**
   * Asks the hub to start a server (needs the `servers` scope).
   * @returns `'started'` (201: ready) or `'pending'` (202: still spawning; see `waitForServerReady`).
   * Throws `RESUME_ERR_HUB_SERVER_ALREADY_RUNNING` if it is already running.
   */
  startServer(user: string, serverName?: string): Promise<'started' | 'pending'>;

  /**
   * Asks the hub to stop a server (needs `delete:servers`). Stopping a server that is not
   * running succeeds: the hub answers 204 and so do we.
   * @returns `'stopped'` (204) or `'pending'` (202: still stopping; see `waitForServerStopped`).
   */
  stopServer(user: string, serverName?: string): Promise<'stopped' | 'pending'>;

  /** Resolves once the server is no longer active; `RESUME_ERR_HUB_WAIT_TIMEOUT` at the deadline. */
  waitForServerStopped(user: string, serverName: string, options: WaitOptions): Promise<void>;

  /**
   * Resolves with the server once it is ready. Throws `RESUME_ERR_HUB_SPAWN_FAILED` if it stops
   * being active (the spawn failed) and `RESUME_ERR_HUB_WAIT_TIMEOUT` at the deadline.
   */
  waitForServerReady(user: string, serverName: string, options: WaitOptions): Promise<HubServer>;

  /**
   * Who owns `token` (`GET /hub/api/user` sent *with that token*).
   * Throws `RESUME_ERR_AUTH_INVALID_TOKEN` (401) if the hub does not know the token.
   */
  whoami(token: string): Promise<TokenOwner>;
}

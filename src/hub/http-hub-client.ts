/**
 * `HubClient` over JupyterHub's REST API, with Node's global `fetch`.
 *
 * Notes:
 * - The token travels only in the `Authorization: token …` header: the hub API does not accept
 *   `?token=`, and URLs end up in logs.
 * - Pages are followed by offset/limit against *our* API URL, not by `_pagination.next.url`: the
 *   hub builds that URL from the Host it was reached by, and our token must never go to a host we
 *   were not configured with.
 * - Spec: https://jupyterhub.readthedocs.io/en/stable/reference/rest-api.html
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ResumeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HubClient, HubServer, HubUser, ListUsersOptions, TokenOwner, WaitOptions } from './hub-client.js';
import { toHubUser, toTokenOwner, toUserPage, toVersion } from './hub-models.js';

/** How to reach the hub. */
export type HttpHubClientOptions = {
  /** The hub API root, as in `$JUPYTERHUB_API_URL`: `http://127.0.0.1:8081/hub/api`. */
  apiUrl: string;
  /** The token our requests carry (the service's `$JUPYTERHUB_API_TOKEN`). */
  token: string;
  logger?: Logger;
  /** Per request; default 30 s, as `JUPYTERHUB_REQUEST_TIMEOUT` in jupyterhub-idle-culler. */
  requestTimeoutMs?: number;
};

type HubResponse = { status: number; body: unknown };

const PAGINATION_ACCEPT = 'application/jupyterhub-pagination+json';

/** The JupyterHub REST API client the service uses in production. */
export class HttpHubClient implements HubClient {
  readonly #apiUrl: string;
  readonly #token: string;
  readonly #logger: Logger | undefined;
  readonly #timeoutMs: number;

  /** @param options hub API URL and token; see `HttpHubClientOptions`. */
  constructor(options: HttpHubClientOptions) {
    let url: URL;
    try {
      url = new URL(options.apiUrl);
    } catch (cause) {
      throw new ResumeError('RESUME_ERR_HUB_URL_INVALID', `The hub API URL ${JSON.stringify(options.apiUrl)} is not a URL`, {
        status: 500,
        hint: 'Set JUPYTERHUB_API_URL to the hub API root, e.g. http://127.0.0.1:8081/hub/api',
        cause,
      });
    }
    if (url.search !== '' || url.username !== '' || url.password !== '') {
      // A token or credentials in the URL would be logged and sent to every path.
      throw new ResumeError('RESUME_ERR_HUB_URL_INVALID', 'The hub API URL must not carry a query string or credentials', {
        status: 500,
        hint: 'Put the token in JUPYTERHUB_API_TOKEN, and only the API root in JUPYTERHUB_API_URL',
      });
    }
    if (!isHeaderSafe(options.token)) {
      throw new ResumeError('RESUME_ERR_HUB_TOKEN_MISSING', 'The hub API token is empty or has characters a header cannot carry', {
        status: 500,
        hint: "Set JUPYTERHUB_API_TOKEN to the service's token (the api_token in the hub's service config)",
      });
    }
    this.#apiUrl = url.href.replace(/\/+$/, '');
    this.#token = options.token;
    this.#logger = options.logger;
    this.#timeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  /** @inheritDoc */
  async version(): Promise<string> {
    const res = await this.#request('GET', '/', { auth: false });
    this.#expect(res, [200], 'GET /hub/api/');
    return toVersion(res.body);
  }

  /** @inheritDoc */
  async *listUsers(options: ListUsersOptions = {}): AsyncIterable<HubUser> {
    let offset = 0;
    let limit = options.pageSize;
    for (;;) {
      const query = new URLSearchParams();
      if (options.state !== undefined) query.set('state', options.state);
      query.set('offset', String(offset));
      if (limit !== undefined) query.set('limit', String(limit));
      const res = await this.#request('GET', `/users?${query}`, { accept: PAGINATION_ACCEPT });
      this.#expect(res, [200], 'GET /hub/api/users');
      const page = toUserPage(res.body);
      for (const item of page.items) yield toHubUser(item);
      if (page.next === null) return;
      if (page.next.offset <= offset) {
        // A hub that sends the same page again would make this loop forever.
        throw new ResumeError('RESUME_ERR_HUB_RESPONSE_INVALID', `The hub's user list does not advance (next offset ${page.next.offset})`, {
          status: 502,
          hint: 'This is a hub bug; check the hub version and its logs',
        });
      }
      offset = page.next.offset;
      limit = page.next.limit;
    }
  }

  /** @inheritDoc */
  async getUser(name: string): Promise<HubUser | null> {
    const res = await this.#request('GET', `/users/${encodeURIComponent(name)}`);
    if (res.status === 404) return null;
    this.#expect(res, [200], 'GET /hub/api/users/:name', { user: name });
    return toHubUser(res.body);
  }

  /** @inheritDoc */
  async startServer(user: string, serverName = ''): Promise<'started' | 'pending'> {
    // An empty body: up to 5.x the whole body is `user_options`, and 6.0 still accepts that form.
    const res = await this.#request('POST', serverPath(user, serverName), { body: {} });
    const context = { user, server: serverName };
    if (res.status === 400 && /already running/i.test(hubMessage(res.body))) {
      throw new ResumeError('RESUME_ERR_HUB_SERVER_ALREADY_RUNNING', `The hub says ${serverLabel(user, serverName)} is already running`, {
        status: 409,
        hint: 'Nothing to start: use the running server, or stop it first',
        context,
      });
    }
    this.#expect(res, [201, 202], 'POST /hub/api/users/:name/server', context);
    return res.status === 201 ? 'started' : 'pending';
  }

  /** @inheritDoc */
  async stopServer(user: string, serverName = ''): Promise<'stopped' | 'pending'> {
    const res = await this.#request('DELETE', serverPath(user, serverName));
    this.#expect(res, [202, 204], 'DELETE /hub/api/users/:name/server', { user, server: serverName });
    return res.status === 204 ? 'stopped' : 'pending';
  }

  /** @inheritDoc */
  async waitForServerStopped(user: string, serverName: string, options: WaitOptions): Promise<void> {
    await this.#poll(user, serverName, options, 'stopped', (server) => (server === undefined ? true : undefined));
  }

  /** @inheritDoc */
  async waitForServerReady(user: string, serverName: string, options: WaitOptions): Promise<HubServer> {
    return this.#poll(user, serverName, options, 'ready', (server) => {
      if (server === undefined) {
        throw new ResumeError('RESUME_ERR_HUB_SPAWN_FAILED', `${serverLabel(user, serverName)} is neither running nor starting: its spawn failed or it was stopped`, {
          status: 502,
          hint: "Look for the spawn error in the hub's log (and the server's own output)",
          context: { user, server: serverName },
        });
      }
      return server.ready && server.pending === null ? server : undefined;
    });
  }

  /** @inheritDoc */
  async whoami(token: string): Promise<TokenOwner> {
    // A token with spaces or newlines cannot be a hub token, and must not reach a header.
    const res = isHeaderSafe(token) ? await this.#request('GET', '/user', { token }) : { status: 401, body: '' };
    if (res.status === 401 || res.status === 403) {
      // The hub answers 403 "Forbidden" for a token it does not know (it has no 401 for this).
      throw new ResumeError('RESUME_ERR_AUTH_INVALID_TOKEN', 'The token is not valid for this hub (unknown, expired or revoked)', {
        status: 401,
        hint: 'Send a current JupyterHub API token in the Authorization header ("token <token>")',
      });
    }
    this.#expect(res, [200], 'GET /hub/api/user');
    return toTokenOwner(res.body);
  }

  /**
   * Polls the user model until `check` returns a value, or the deadline passes.
   * @param check gets the server (undefined when it is not active) and returns the result, or
   *   undefined to keep polling; it may throw to stop.
   */
  async #poll<T>(
    user: string,
    serverName: string,
    options: WaitOptions,
    goal: string,
    check: (server: HubServer | undefined) => T | undefined,
  ): Promise<T> {
    const deadline = Date.now() + options.timeoutMs;
    const interval = options.pollIntervalMs ?? 250;
    for (;;) {
      const found = await this.getUser(user);
      if (found === null && goal === 'ready') {
        throw new ResumeError('RESUME_ERR_HUB_USER_NOT_FOUND', `The hub has no user ${JSON.stringify(user)}`, {
          status: 404,
          hint: 'Check the user name; it may have been deleted',
          context: { user, server: serverName },
        });
      }
      const result = check(found?.servers.find((s) => s.name === serverName));
      if (result !== undefined) return result;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ResumeError('RESUME_ERR_HUB_WAIT_TIMEOUT', `${serverLabel(user, serverName)} was not ${goal} after ${options.timeoutMs} ms`, {
          status: 504,
          hint: "The hub is still working on it or is stuck: check the hub's log, then retry or raise the timeout",
          context: { user, server: serverName },
        });
      }
      await sleep(Math.min(interval, left));
    }
  }

  /** Throws `RESUME_ERR_HUB_REQUEST_FAILED` with the hub's own message unless the status is expected. */
  #expect(res: HubResponse, ok: number[], what: string, context: Record<string, unknown> = {}): void {
    if (ok.includes(res.status)) return;
    const message = hubMessage(res.body) || `HTTP ${res.status}`;
    throw new ResumeError('RESUME_ERR_HUB_REQUEST_FAILED', `The hub refused ${what} (${res.status}): ${message}`, {
      status: 502,
      hint: hintFor(res.status),
      context: { ...context, hubStatus: res.status },
    });
  }

  async #request(
    method: string,
    path: string,
    options: { auth?: boolean; token?: string; accept?: string; body?: unknown } = {},
  ): Promise<HubResponse> {
    const headers: Record<string, string> = { Accept: options.accept ?? 'application/json' };
    if (options.auth !== false) headers.Authorization = `token ${options.token ?? this.#token}`;
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    const started = performance.now();
    // The path, never the query string: user-controlled values stay out of the structured keys.
    const logPath = path.split('?')[0];
    let response: Response;
    try {
      response = await fetch(this.#apiUrl + path, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        // The hub API does not redirect; following one would carry our token somewhere else.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (cause) {
      const timedOut = cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError');
      this.#logger?.warn({ method, path: logPath, err: describeCause(cause) }, 'hub request failed');
      throw new ResumeError(
        'RESUME_ERR_HUB_UNREACHABLE',
        timedOut
          ? `The hub did not answer ${method} ${logPath} within ${this.#timeoutMs} ms`
          : `Cannot reach the hub at ${this.#apiUrl}: ${describeCause(cause)}`,
        {
          status: 503,
          hint: 'Check that JupyterHub is running and that JUPYTERHUB_API_URL is the address this service reaches it by',
          cause,
        },
      );
    }
    const text = await response.text();
    let body: unknown = text;
    if (text !== '' && (response.headers.get('content-type') ?? '').includes('json')) {
      try {
        body = JSON.parse(text);
      } catch {
        // Keep the text: the status decides what happens, and #expect reports the text.
      }
    }
    this.#logger?.debug(
      { method, path: logPath, status: response.status, ms: Math.round(performance.now() - started) },
      'hub request',
    );
    return { status: response.status, body };
  }
}

/** Hub tokens are printable ASCII without spaces; anything else would break or inject headers. */
function isHeaderSafe(token: string): boolean {
  return /^[\x21-\x7e]{1,4096}$/.test(token);
}

/** `/users/alice/server` or `/users/alice/servers/<name>`, each part URL-encoded. */
function serverPath(user: string, serverName: string): string {
  const base = `/users/${encodeURIComponent(user)}`;
  return serverName === '' ? `${base}/server` : `${base}/servers/${encodeURIComponent(serverName)}`;
}

function serverLabel(user: string, serverName: string): string {
  return serverName === '' ? `${user}'s default server` : `${user}'s server ${JSON.stringify(serverName)}`;
}

/** The hub's error text: `{"status": 400, "message": "…"}`, or a plain-text body. */
function hubMessage(body: unknown): string {
  if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') {
    return body.message;
  }
  return typeof body === 'string' ? body.slice(0, 500) : '';
}

function hintFor(status: number): string {
  if (status === 403) {
    return "The service token lacks a scope for this call: check the service's role in load_roles (hub-config/resume_service.py)";
  }
  if (status === 404) return 'The user or server does not exist (any more), or named servers are not enabled on this hub';
  if (status >= 500) return "The hub failed: check the hub's log";
  return "Read the hub's message above; the hub's log has the details";
}

/** One line for an error's cause chain (fetch wraps ECONNREFUSED and friends in `cause`). */
function describeCause(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const inner = e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return `${e.message}${inner}`;
}

/**
 * REST client for one Jupyter server (a user's single-user server, reached directly at its URL,
 * not through the proxy): kernels, sessions and the server's status.
 *
 * Every request carries `?no_track_activity=1`: our own traffic must never make an idle server look
 * active, or the culler would never cull it (DESIGN invariant 4; reference/jupyterhub.md §2).
 * The token travels in the `Authorization` header only, never in a URL.
 */
import { z } from 'zod';
import { ResumeError } from '../errors.js';
import { describeSchemaIssues } from './kernel-messages.js';

/** A running kernel as `GET api/kernels` lists it. */
export const kernelModelSchema = z.looseObject({
  id: z.string().min(1),
  name: z.string(),
  execution_state: z.string(),
  last_activity: z.string(),
  connections: z.number().int().nonnegative(),
});
/** A kernel model (see `kernelModelSchema`). */
export type KernelModel = z.infer<typeof kernelModelSchema>;

/** A session (notebook ↔ kernel) as `GET api/sessions` lists it. */
export const sessionModelSchema = z.looseObject({
  id: z.string().min(1),
  path: z.string(),
  name: z.string().nullable().optional(),
  type: z.string().nullable().optional(),
  kernel: kernelModelSchema.nullable(),
});
/** A session model (see `sessionModelSchema`). */
export type SessionModel = z.infer<typeof sessionModelSchema>;

/** A notebook's cells as `GET api/contents/<path>?content=1` gives them: only what tags need. */
const notebookContentSchema = z.looseObject({
  type: z.literal('notebook'),
  content: z.looseObject({
    cells: z.array(
      z.looseObject({
        id: z.string().optional(),
        metadata: z.looseObject({ tags: z.array(z.string()).optional() }).optional(),
      }),
    ),
  }),
});

/** `GET api/status`: the server's own view of its activity (not activity-tracked itself). */
export const serverStatusSchema = z.looseObject({
  started: z.string(),
  last_activity: z.string(),
  kernels: z.number().int().nonnegative(),
  connections: z.number().int().nonnegative(),
});
/** A server status (see `serverStatusSchema`). */
export type ServerStatus = z.infer<typeof serverStatusSchema>;

/** Options of a JupyterServerClient. */
export type JupyterServerClientOptions = {
  /** The server's base URL, e.g. `http://10.0.0.7:8888/user/alice/` (a trailing slash is added). */
  baseUrl: string;
  /** A token the server accepts (for a hub server: one with `access:servers` on it). */
  token: string;
  /** Deadline of each request; default 30 s. */
  timeoutMs?: number;
};

/** Talks to one Jupyter server's REST API without counting as activity. */
export class JupyterServerClient {
  /** The server's base URL, with a trailing slash. */
  readonly baseUrl: string;
  private readonly token: string;
  private readonly timeoutMs: number;

  constructor(options: JupyterServerClientOptions) {
    this.baseUrl = options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`;
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Lists the server's running kernels. */
  async listKernels(): Promise<KernelModel[]> {
    return this.request('GET', 'api/kernels', z.array(kernelModelSchema));
  }

  /**
   * Reads one kernel.
   * @returns its model, or null when the server has no such kernel.
   */
  async getKernel(kernelId: string): Promise<KernelModel | null> {
    return this.request('GET', `api/kernels/${encodeURIComponent(kernelId)}`, kernelModelSchema, { notFound: null });
  }

  /** Lists the server's sessions (which notebook each kernel serves). */
  async listSessions(): Promise<SessionModel[]> {
    return this.request('GET', 'api/sessions', z.array(sessionModelSchema));
  }

  /**
   * The tags of a notebook's cells, by cell id (cells without an id or without tags left out).
   * @param path the notebook, relative to the server's root (a session's `path`).
   * @returns null when the server has no such file.
   */
  async notebookCellTags(path: string): Promise<Map<string, string[]> | null> {
    const encoded = path.split('/').map(encodeURIComponent).join('/');
    const notebook = await this.request('GET', `api/contents/${encoded}?type=notebook&content=1`, notebookContentSchema, { notFound: null });
    if (notebook === null) return null;
    const tags = new Map<string, string[]>();
    for (const cell of notebook.content.cells) {
      const cellTags = cell.metadata?.tags ?? [];
      if (cell.id !== undefined && cellTags.length > 0) tags.set(cell.id, cellTags);
    }
    return tags;
  }

  /**
   * Starts a kernel.
   * @param name the kernelspec name; the server's default when omitted.
   * @param path the directory the kernel starts in, relative to the server's root.
   */
  async startKernel(name?: string, path?: string): Promise<KernelModel> {
    const body: Record<string, string> = {};
    if (name !== undefined) body['name'] = name;
    if (path !== undefined) body['path'] = path;
    return this.request('POST', 'api/kernels', kernelModelSchema, { body });
  }

  /** Interrupts a kernel (the server signals it). */
  async interruptKernel(kernelId: string): Promise<void> {
    await this.request('POST', `api/kernels/${encodeURIComponent(kernelId)}/interrupt`, z.unknown());
  }

  /** Restarts a kernel in place (same id, empty namespace). */
  async restartKernel(kernelId: string): Promise<KernelModel> {
    return this.request('POST', `api/kernels/${encodeURIComponent(kernelId)}/restart`, kernelModelSchema);
  }

  /** Shuts a kernel down; a kernel that is already gone is not an error. */
  async shutdownKernel(kernelId: string): Promise<void> {
    await this.request('DELETE', `api/kernels/${encodeURIComponent(kernelId)}`, z.unknown(), { notFound: undefined });
  }

  /** The server's status, including its `last_activity`. */
  async status(): Promise<ServerStatus> {
    return this.request('GET', 'api/status', serverStatusSchema);
  }

  /**
   * Sends one request and validates the JSON answer.
   * @param options.notFound returned instead of throwing when the server answers 404.
   */
  private async request<S extends z.ZodType, N = never>(
    method: string,
    path: string,
    schema: S,
    options: { body?: unknown; notFound?: N } = {},
  ): Promise<z.infer<S> | N> {
    const url = new URL(path, this.baseUrl);
    url.searchParams.set('no_track_activity', '1');
    const where = `${method} ${url.origin}${url.pathname}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          Authorization: `token ${this.token}`,
          Accept: 'application/json',
          ...(options.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'manual',
      });
    } catch (cause) {
      throw new ResumeError('RESUME_ERR_JUPYTER_UNREACHABLE', `${where} failed: ${describeFetchError(cause)}.`, {
        status: 502,
        hint: 'Check that the server is running and that this service can reach its address (on Kubernetes: the network policy label hub.jupyter.org/network-access-singleuser).',
        cause,
      });
    }
    if (response.status === 404 && 'notFound' in options) {
      await response.body?.cancel();
      return options.notFound as N;
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel();
      throw new ResumeError('RESUME_ERR_JUPYTER_FORBIDDEN', `${where} was refused (${response.status}).`, {
        status: 403,
        hint: 'The token is not accepted by this server: the service role needs the access:servers scope (see hub-config/resume_service.py).',
      });
    }
    const text = await response.text();
    if (!response.ok) {
      throw new ResumeError('RESUME_ERR_JUPYTER_REQUEST_FAILED', `${where} answered ${response.status}: ${serverMessage(text)}`, {
        status: 502,
        hint: 'See the single-user server\'s log for the cause.',
      });
    }
    let json: unknown = null;
    if (text !== '') {
      try {
        json = JSON.parse(text);
      } catch (cause) {
        throw invalidResponse(where, 'the body is not JSON', cause);
      }
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw invalidResponse(where, describeSchemaIssues(parsed.error));
    return parsed.data;
  }
}

function invalidResponse(where: string, why: string, cause?: unknown): ResumeError {
  return new ResumeError('RESUME_ERR_JUPYTER_RESPONSE_INVALID', `${where} answered something that is not a Jupyter server response: ${why}.`, {
    status: 502,
    hint: 'Check that the URL points at a jupyter_server (2.x) base URL, e.g. http://host:8888/user/<name>/.',
    cause,
  });
}

function serverMessage(text: string): string {
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json === 'object' && json !== null && 'message' in json) return String(json.message);
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.slice(0, 200);
}

function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'no answer in time';
  const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
  return cause?.code ?? (error instanceof Error ? error.message : String(error));
}

/**
 * A kernel channel through a Jupyter server: the kernel's websocket
 * (`api/kernels/<id>/channels`), driven by `@jupyterlab/services`' KernelConnection.
 *
 * Notes:
 * - The token goes in the websocket upgrade's `Authorization` header. JupyterHub 5 single-user
 *   servers ignore URL tokens from non-browser clients (reference/jupyterhub.md §4), and a URL
 *   would leak the token into access logs anyway.
 * - `handleComms: false`: the user's own frontend answers widget comms; a second handler would
 *   open duplicate comms in the kernel.
 * - The REST calls KernelConnection makes on its own (kernel model on reconnect, interrupt) go
 *   through JupyterServerClient, so they carry `no_track_activity` like everything else we send.
 * - No KernelManager: it polls the server (tracked activity) and crashes Node when disposed
 *   before it is ready (reference/environment-probe.md §2).
 */
import { KernelConnection, ServerConnection, type Kernel } from '@jupyterlab/services';
import WebSocket from 'ws';
import { ResumeError } from '../errors.js';
import type { Logger } from '../log.js';
import { ExecuteCollector } from './execute-collector.js';
import { JupyterServerClient } from './jupyter-server-client.js';
import {
  DEFAULT_EXECUTE_TIMEOUT_MS,
  type ExecuteOptions,
  type ExecuteResult,
  type KernelChannel,
} from './kernel-channel.js';
import { buildExecuteRequestContent, buildExecuteRequestMetadata } from './kernel-messages.js';

/** Options of `ServerKernelChannel.connect`. */
export type ServerKernelChannelOptions = {
  /** The server's base URL, e.g. `http://10.0.0.7:8888/user/alice/`. */
  baseUrl: string;
  /** A token the server accepts; sent in headers only. */
  token: string;
  /** The kernel to attach to (it must be running). */
  kernelId: string;
  /** Deadline for the websocket and the first `kernel_info_reply`; default 30 s. */
  connectTimeoutMs?: number;
  /**
   * While requests are pending, how often the server is asked whether the kernel still exists;
   * default 2 s. (A server keeps the websocket of a kernel it shut down open, so the socket alone
   * does not tell us.)
   */
  watchIntervalMs?: number;
  /** Shown as the message `username` in the kernel's logs. */
  username?: string;
  logger?: Logger;
};

/** Runs code in a kernel of a Jupyter server over its websocket. */
export class ServerKernelChannel implements KernelChannel {
  private readonly failures = new Set<(error: ResumeError) => void>();
  private watchTimer: NodeJS.Timeout | null = null;
  private disposed = false;

  private constructor(
    private readonly connection: KernelConnection,
    /** The REST client used for this kernel's server (untracked requests). */
    readonly client: JupyterServerClient,
    private readonly logger: Logger | undefined,
    private readonly watchIntervalMs: number,
  ) {
    connection.statusChanged.connect((_, status) => {
      if (status === 'dead') this.failAll(deadKernelError(connection.id, 'it is dead'));
      // A restart empties the namespace and drops queued requests: nothing pending will finish.
      if (status === 'restarting' || status === 'autorestarting') {
        this.failAll(deadKernelError(connection.id, 'it restarted'));
      }
    });
    connection.connectionStatusChanged.connect((_, status) => {
      logger?.debug({ kernelId: connection.id, status }, 'kernel websocket status');
      if (status === 'disconnected' && !this.disposed) {
        this.failAll(
          new ResumeError('RESUME_ERR_KERNEL_DISCONNECTED', `Lost the websocket to kernel ${connection.id}.`, {
            status: 502,
            hint: 'The server stopped or the network dropped; check that the server still runs and reconnect.',
          }),
        );
      }
    });
  }

  /**
   * Attaches to a running kernel of a server and waits for its `kernel_info_reply`.
   * @param options server URL, token, kernel id and deadline.
   * @returns a ready channel.
   * Throws RESUME_ERR_JUPYTER_KERNEL_NOT_FOUND when the server has no such kernel, and
   * RESUME_ERR_KERNEL_CONNECT_FAILED when the websocket does not come up in time.
   */
  static async connect(options: ServerKernelChannelOptions): Promise<ServerKernelChannel> {
    quietLibraryConsole();
    const timeoutMs = options.connectTimeoutMs ?? 30_000;
    const client = new JupyterServerClient({ baseUrl: options.baseUrl, token: options.token, timeoutMs });
    const model = await client.getKernel(options.kernelId);
    if (model === null) {
      throw new ResumeError('RESUME_ERR_JUPYTER_KERNEL_NOT_FOUND', `The server at ${client.baseUrl} has no kernel ${options.kernelId}.`, {
        status: 404,
        hint: 'The kernel was shut down or restarted under a new id; list the server\'s kernels again.',
        context: { kernelId: options.kernelId },
      });
    }
    const serverSettings = ServerConnection.makeSettings({
      baseUrl: client.baseUrl,
      token: options.token,
      appendToken: false,
      WebSocket: authenticatedWebSocket(options.token),
    });
    const connection = new KernelConnection({
      model: { id: model.id, name: model.name },
      serverSettings,
      kernelAPIClient: new UntrackedKernelAPIClient(serverSettings, client),
      handleComms: false,
      username: options.username ?? 'jupyterhub-resume',
    });
    const channel = new ServerKernelChannel(connection, client, options.logger, options.watchIntervalMs ?? 2_000);
    try {
      await channel.waitUntil(connection.info, timeoutMs, () =>
        new ResumeError(
          'RESUME_ERR_KERNEL_CONNECT_FAILED',
          `No kernel_info_reply from kernel ${model.id} at ${client.baseUrl} within ${timeoutMs} ms.`,
          {
            status: 504,
            hint: 'The websocket was refused or the kernel is stuck: check that the token has access:servers for this server and that the kernel is not busy starting.',
            context: { kernelId: model.id },
          },
        ),
      );
      return channel;
    } catch (error) {
      await channel.dispose();
      throw error;
    }
  }

  /** The kernel's id. */
  get kernelId(): string {
    return this.connection.id;
  }

  /** True once `dispose()` was called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** {@inheritDoc KernelChannel.execute} */
  async execute(code: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    this.errorIfDisposed();
    const timeoutMs = options.timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS;
    const future = this.connection.requestExecute(buildExecuteRequestContent(code, options), true, buildExecuteRequestMetadata(options));
    const collector = new ExecuteCollector(future.msg.header.msg_id);
    future.onIOPub = (msg) => collector.handleIOPub(msg.header.msg_type, msg.content);
    future.onReply = (msg) => collector.handleReply(msg.content);
    future.done.catch(() => undefined);
    try {
      return await this.waitUntil(collector.done, timeoutMs, () =>
        new ResumeError(
          'RESUME_ERR_KERNEL_TIMEOUT',
          `Kernel ${this.connection.id} did not finish execute_request within ${timeoutMs} ms.`,
          {
            status: 504,
            hint: 'The kernel is busy (requests queue behind a running cell): wait, interrupt the cell, or raise the timeout.',
          },
        ),
      );
    } finally {
      // Stops routing late messages to a collector nobody waits for.
      if (!future.isDisposed) future.dispose();
    }
  }

  /** Interrupts the running cell (the server signals the kernel process). */
  async interrupt(): Promise<void> {
    this.errorIfDisposed();
    await this.client.interruptKernel(this.connection.id);
  }

  /** {@inheritDoc KernelChannel.dispose} */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.stopWatching();
    this.failAll(
      new ResumeError('RESUME_ERR_KERNEL_CHANNEL_CLOSED', 'The kernel channel was closed while a request was pending.', {
        status: 503,
        hint: 'The caller shut the connection down; retry on a new connection if the kernel still runs.',
      }),
    );
    // Closes our websocket only; the kernel keeps running for its user.
    this.connection.dispose();
  }

  /** Waits for `promise`, failing on the deadline or as soon as the kernel dies or disconnects. */
  private async waitUntil<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => ResumeError): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let fail!: (error: ResumeError) => void;
    const aborted = new Promise<never>((_, reject) => {
      fail = reject;
      timer = setTimeout(() => reject(onTimeout()), timeoutMs);
    });
    this.failures.add(fail);
    this.startWatching();
    try {
      return await Promise.race([promise, aborted]);
    } finally {
      clearTimeout(timer);
      this.failures.delete(fail);
      if (this.failures.size === 0) this.stopWatching();
    }
  }

  /** Asks the server, while requests are pending, whether the kernel still exists. */
  private startWatching(): void {
    if (this.watchTimer || this.disposed) return;
    this.watchTimer = setInterval(() => {
      this.client.getKernel(this.connection.id).then(
        (model) => {
          if (model === null) this.failAll(deadKernelError(this.connection.id, 'the server no longer has it'));
          else if (model.execution_state === 'dead') this.failAll(deadKernelError(this.connection.id, 'it is dead'));
        },
        // An unreachable server is the websocket's and the deadline's business.
        (error: unknown) => this.logger?.debug({ err: error, kernelId: this.connection.id }, 'kernel watch failed'),
      );
    }, this.watchIntervalMs);
    this.watchTimer.unref();
  }

  private stopWatching(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  private failAll(error: ResumeError): void {
    for (const fail of [...this.failures]) fail(error);
  }

  private errorIfDisposed(): void {
    if (this.disposed) {
      throw new ResumeError('RESUME_ERR_KERNEL_CHANNEL_CLOSED', 'The kernel channel is closed.', {
        status: 503,
        hint: 'Open a new channel to the kernel.',
      });
    }
  }
}

/**
 * A `ws` WebSocket class that authenticates the upgrade with `Authorization: token …`.
 * @param token the token; never put into the URL.
 */
function authenticatedWebSocket(token: string): typeof globalThis.WebSocket {
  class AuthenticatedWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { headers: { Authorization: `token ${token}` } });
    }
  }
  // KernelConnection only uses the browser-compatible surface, which `ws` implements.
  return AuthenticatedWebSocket as unknown as typeof globalThis.WebSocket;
}

/** KernelConnection's REST needs, served by our client so they never count as activity. */
class UntrackedKernelAPIClient implements Kernel.IKernelAPIClient {
  constructor(
    readonly serverSettings: ServerConnection.ISettings,
    private readonly client: JupyterServerClient,
  ) {}

  listRunning(): Promise<Kernel.IModel[]> {
    return this.client.listKernels();
  }

  async getModel(id: string): Promise<Kernel.IModel | undefined> {
    return (await this.client.getKernel(id)) ?? undefined;
  }

  startNew(options?: Kernel.IKernelOptions): Promise<Kernel.IModel> {
    return this.client.startKernel(options?.name);
  }

  async restart(id: string): Promise<void> {
    await this.client.restartKernel(id);
  }

  interrupt(id: string): Promise<void> {
    return this.client.interruptKernel(id);
  }

  shutdown(id: string): Promise<void> {
    return this.client.shutdownKernel(id);
  }
}

function deadKernelError(kernelId: string, why: string): ResumeError {
  return new ResumeError('RESUME_ERR_KERNEL_DEAD', `Kernel ${kernelId} is gone: ${why}.`, {
    status: 502,
    hint: 'The kernel process exited; the user (or the service) must start a new kernel.',
    context: { kernelId },
  });
}

/** Console lines KernelConnection prints for routine events; we log these events ourselves. */
const LIBRARY_CHATTER = [/^Starting WebSocket: /, /^Kernel: \w+ \(/, /^Connection lost, reconnecting in /];
let consoleQuieted = false;

/**
 * Drops @jupyterlab/services' routine console lines (connect, status, reconnect). The library
 * writes them with `console.debug`/`console.warn` — on stdout/stderr of a server process, between
 * our JSON log lines — and offers no hook to turn them off. Every other console output passes.
 */
function quietLibraryConsole(): void {
  if (consoleQuieted) return;
  consoleQuieted = true;
  for (const level of ['debug', 'warn', 'log'] as const) {
    const original = console[level].bind(console);
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && LIBRARY_CHATTER.some((re) => re.test(args[0] as string))) return;
      original(...args);
    };
  }
}

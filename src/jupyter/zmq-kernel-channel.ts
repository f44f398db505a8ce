/**
 * A kernel channel over ZeroMQ, straight to a kernel from its connection file: a Dealer each for
 * shell and control, a Subscriber for iopub and a Dealer on the heartbeat socket.
 *
 * Used for kernels we start ourselves (`LocalKernel`, `verify`). Kernels of a user's server are
 * reached through the server instead (`ServerKernelChannel`).
 */
import { Dealer, Subscriber } from 'zeromq';
import { ResumeError } from '../errors.js';
import type { Logger } from '../log.js';
import { endpointOf, type ConnectionInfo } from './connection-info.js';
import { ExecuteCollector } from './execute-collector.js';
import { KernelHeartbeat } from './kernel-heartbeat.js';
import {
  DEFAULT_EXECUTE_TIMEOUT_MS,
  type ExecuteOptions,
  type ExecuteResult,
  type KernelChannel,
} from './kernel-channel.js';
import {
  buildExecuteRequestContent,
  buildExecuteRequestMetadata,
  describeSchemaIssues,
  kernelInfoReplyContentSchema,
  type KernelInfoReplyContent,
} from './kernel-messages.js';
import { WireCodec, type WireMessage } from './wire-codec.js';

/** Options of `ZmqKernelChannel.connect`. */
export type ZmqKernelChannelOptions = {
  /** Deadline for the first `kernel_info_reply` (the kernel may still be starting); default 30 s. */
  connectTimeoutMs?: number;
  /** How often the heartbeat is pinged while requests are pending; default 1 s. */
  heartbeatIntervalMs?: number;
  /** A heartbeat silent this long means the kernel is dead; default 5 s. */
  heartbeatTimeoutMs?: number;
  /** Aborting stops `connect` early (e.g. the kernel process already exited). */
  signal?: AbortSignal;
  logger?: Logger;
};

/** What a request waits for. Execute requests use an ExecuteCollector; others a plain reply. */
type Pending = {
  onReply(msgType: string, content: unknown): void;
  onIOPub(msgType: string, content: unknown): void;
  fail(error: unknown): void;
};

type ChannelName = 'shell' | 'control';

/** Runs code in a kernel over ZeroMQ. Create with `ZmqKernelChannel.connect()`. */
export class ZmqKernelChannel implements KernelChannel {
  private readonly codec: WireCodec;
  private readonly shell = new Dealer({ linger: 0 });
  private readonly control = new Dealer({ linger: 0 });
  private readonly iopub = new Subscriber({ linger: 0 });
  private readonly heartbeat: KernelHeartbeat;
  private readonly pending = new Map<string, Pending>();
  private readonly sendChains = new Map<Dealer, Promise<void>>();
  private readonly logger: Logger | undefined;
  private disposed = false;

  private constructor(
    readonly connectionInfo: ConnectionInfo,
    options: ZmqKernelChannelOptions,
  ) {
    this.codec = new WireCodec(connectionInfo.key);
    this.logger = options.logger;
    this.heartbeat = new KernelHeartbeat(endpointOf(connectionInfo, 'hb'), {
      ...(options.heartbeatIntervalMs === undefined ? {} : { intervalMs: options.heartbeatIntervalMs }),
      ...(options.heartbeatTimeoutMs === undefined ? {} : { timeoutMs: options.heartbeatTimeoutMs }),
    });
    this.shell.connect(endpointOf(connectionInfo, 'shell'));
    this.control.connect(endpointOf(connectionInfo, 'control'));
    this.iopub.connect(endpointOf(connectionInfo, 'iopub'));
    this.iopub.subscribe();
    void this.receiveReplies(this.shell);
    void this.receiveReplies(this.control);
    void this.receiveIOPub();
  }

  /**
   * Connects to a kernel and waits until it answers `kernel_info_request` and its iopub messages
   * reach us (a fresh subscription misses messages until it is set up, so an execute sent
   * earlier could lose its outputs).
   * @param info the kernel's connection info; its ports must be bound (non-zero).
   * @param options deadlines and heartbeat tuning.
   * @returns a ready channel.
   * Throws RESUME_ERR_KERNEL_NO_REPLY when the kernel's heartbeat answers but it never replies
   * (typically a wrong key: the kernel drops messages with a bad signature), and
   * RESUME_ERR_KERNEL_DEAD when nothing answers at all.
   */
  static async connect(info: ConnectionInfo, options: ZmqKernelChannelOptions = {}): Promise<ZmqKernelChannel> {
    const channel = new ZmqKernelChannel(info, options);
    try {
      await channel.handshake(options.connectTimeoutMs ?? 30_000, options.signal);
      return channel;
    } catch (error) {
      await channel.dispose();
      throw error;
    }
  }

  /** True once `dispose()` was called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** {@inheritDoc KernelChannel.execute} */
  async execute(code: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
    this.errorIfDisposed();
    const { msgId, frames } = this.codec.encode('execute_request', buildExecuteRequestContent(code, options), buildExecuteRequestMetadata(options));
    const collector = new ExecuteCollector(msgId);
    this.pending.set(msgId, {
      onReply: (msgType, content) => {
        if (msgType === 'execute_reply') collector.handleReply(content);
      },
      onIOPub: (msgType, content) => collector.handleIOPub(msgType, content),
      fail: (error) => collector.fail(error),
    });
    const timeoutMs = options.timeoutMs ?? DEFAULT_EXECUTE_TIMEOUT_MS;
    return this.track(msgId, collector.done, timeoutMs, 'execute_request', async () => this.send(this.shell, frames));
  }

  /** Interrupts the running cell with an `interrupt_request` on the control channel. */
  async interrupt(): Promise<void> {
    const reply = await this.request('control', 'interrupt_request', {}, 10_000);
    if (isObject(reply) && reply['status'] === 'error') {
      throw new ResumeError('RESUME_ERR_KERNEL_INTERRUPT_FAILED', `The kernel could not interrupt itself: ${String(reply['evalue'])}.`, {
        status: 502,
        hint: 'Interrupt the kernel from the Jupyter UI or restart it.',
      });
    }
  }

  /**
   * Asks for `kernel_info`.
   * @param timeoutMs deadline for the reply.
   * @returns the validated reply content (protocol version, implementation, language).
   */
  async kernelInfo(timeoutMs = 10_000): Promise<KernelInfoReplyContent> {
    return parseKernelInfo(await this.request('shell', 'kernel_info_request', {}, timeoutMs));
  }

  /**
   * Asks the kernel process to exit (`shutdown_request` on control) and waits for its reply.
   * The channel stays open; dispose it afterwards.
   * @param timeoutMs deadline for the reply.
   */
  async requestShutdown(timeoutMs = 5_000): Promise<void> {
    await this.request('control', 'shutdown_request', { restart: false }, timeoutMs);
  }

  /**
   * Pings the heartbeat socket once.
   * @param timeoutMs how long to wait for the echo.
   * @returns whether the kernel process answered (it answers even while running a cell).
   */
  async isAlive(timeoutMs = 2_000): Promise<boolean> {
    return this.disposed ? false : this.heartbeat.isAlive(timeoutMs);
  }

  /** {@inheritDoc KernelChannel.dispose} */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.heartbeat.close();
    const closed = new ResumeError('RESUME_ERR_KERNEL_CHANNEL_CLOSED', 'The kernel channel was closed while a request was pending.', {
      status: 503,
      hint: 'The caller shut the connection down; retry on a new connection if the kernel still runs.',
    });
    for (const p of this.pending.values()) p.fail(closed);
    this.pending.clear();
    for (const socket of [this.shell, this.control, this.iopub]) {
      if (!socket.closed) socket.close();
    }
  }

  /** Sends kernel_info until one comes back with its iopub status (iopub is live), or the deadline. */
  private async handshake(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let answered = false;
    while (Date.now() < deadline) {
      if (signal?.aborted) {
        throw new ResumeError('RESUME_ERR_KERNEL_CHANNEL_CLOSED', 'Connecting to the kernel was given up.', {
          status: 503,
          hint: 'The caller stopped waiting for the kernel (it exited or was shut down).',
        });
      }
      const { msgId, frames } = this.codec.encode('kernel_info_request', {});
      let reply: unknown = undefined;
      let sawIOPub = false;
      const attempt = new Promise<void>((resolve, reject) => {
        const check = () => {
          if (reply !== undefined && sawIOPub) resolve();
        };
        this.pending.set(msgId, {
          onReply: (_t, content) => {
            reply = content;
            check();
          },
          onIOPub: () => {
            sawIOPub = true;
            check();
          },
          fail: reject,
        });
      });
      const wait = Math.min(1_000, Math.max(1, deadline - Date.now()));
      try {
        await this.send(this.shell, frames);
        await withTimeout(attempt, wait);
        parseKernelInfo(reply);
        return;
      } catch (error) {
        if (error instanceof ResumeError) throw error;
        if (!(error instanceof TimeoutSignal)) throw error;
        if (reply !== undefined) answered = true;
      } finally {
        this.pending.delete(msgId);
      }
    }
    if (answered) {
      throw new ResumeError('RESUME_ERR_KERNEL_IOPUB_SILENT', `The kernel answers on shell but sent nothing on iopub within ${timeoutMs} ms.`, {
        status: 502,
        hint: 'Check that iopub_port in the connection file is the kernel\'s iopub port.',
      });
    }
    if (await this.isAlive(2_000)) {
      throw new ResumeError(
        'RESUME_ERR_KERNEL_NO_REPLY',
        `The kernel's heartbeat answers but it did not reply to kernel_info_request within ${timeoutMs} ms.`,
        {
          status: 502,
          hint: 'The connection key is probably wrong (the kernel silently drops messages with a bad signature); use the kernel\'s own connection file.',
        },
      );
    }
    throw deadKernelError(`Nothing answered at ${endpointOf(this.connectionInfo, 'shell')} within ${timeoutMs} ms.`);
  }

  /** Sends a request that has a plain reply (kernel_info, interrupt, shutdown) and waits for it. */
  private async request(channel: ChannelName, msgType: string, content: unknown, timeoutMs: number): Promise<unknown> {
    this.errorIfDisposed();
    const { msgId, frames } = this.codec.encode(msgType, content);
    let settle!: { resolve: (c: unknown) => void; reject: (e: unknown) => void };
    const replied = new Promise<unknown>((resolve, reject) => {
      settle = { resolve, reject };
    });
    replied.catch(() => undefined);
    this.pending.set(msgId, {
      onReply: (_t, c) => settle.resolve(c),
      onIOPub: () => undefined,
      fail: (e) => settle.reject(e),
    });
    const socket = channel === 'shell' ? this.shell : this.control;
    return this.track(msgId, replied, timeoutMs, msgType, async () => this.send(socket, frames));
  }

  /**
   * Sends, then waits for `done` under a deadline while the heartbeat watches the kernel; always
   * forgets the request at the end.
   */
  private async track<T>(msgId: string, done: Promise<T>, timeoutMs: number, msgType: string, send: () => Promise<void>): Promise<T> {
    this.watchHeartbeat();
    try {
      await send();
      return await withTimeout(done, timeoutMs);
    } catch (error) {
      if (error instanceof TimeoutSignal) {
        throw new ResumeError(
          'RESUME_ERR_KERNEL_TIMEOUT',
          `The kernel did not finish ${msgType} within ${timeoutMs} ms; its heartbeat still answers.`,
          {
            status: 504,
            hint: 'The kernel is busy (requests queue behind a running cell): wait, interrupt the cell, or raise the timeout.',
          },
        );
      }
      throw error;
    } finally {
      const p = this.pending.get(msgId);
      this.pending.delete(msgId);
      p?.fail(new Error('request ended'));
      if (this.pending.size === 0) this.heartbeat.unwatch();
    }
  }

  /** Sends on a Dealer; zeromq allows one blocked send per socket, so sends are queued. */
  private async send(socket: Dealer, frames: Buffer[]): Promise<void> {
    const previous = this.sendChains.get(socket) ?? Promise.resolve();
    const next = previous.then(() => socket.send(frames));
    this.sendChains.set(socket, next.catch(() => undefined));
    await next;
  }

  private async receiveReplies(socket: Dealer): Promise<void> {
    try {
      for await (const frames of socket) {
        const msg = this.decode(frames);
        if (!msg) continue;
        const parentId = msg.parentHeader['msg_id'];
        if (typeof parentId !== 'string') continue;
        this.pending.get(parentId)?.onReply(String(msg.header['msg_type']), msg.content);
      }
    } catch (error) {
      this.logReceiveError(error);
    }
  }

  private async receiveIOPub(): Promise<void> {
    try {
      for await (const frames of this.iopub) {
        const msg = this.decode(frames);
        if (!msg) continue;
        const parentId = msg.parentHeader['msg_id'];
        // iopub is a broadcast: other clients' outputs and our earlier requests are ignored.
        if (typeof parentId !== 'string') continue;
        this.pending.get(parentId)?.onIOPub(String(msg.header['msg_type']), msg.content);
      }
    } catch (error) {
      this.logReceiveError(error);
    }
  }

  private decode(frames: Buffer[]): WireMessage | null {
    const msg = this.codec.decode(frames);
    if (!msg) this.logger?.warn('dropped a kernel message with a bad signature or framing');
    return msg;
  }

  /**
   * While requests are pending, the heartbeat is watched: a kernel silent for its timeout is dead,
   * and every pending request fails at once instead of waiting for its own deadline.
   */
  private watchHeartbeat(): void {
    if (this.disposed) return;
    this.heartbeat.watch(() => {
      const error = deadKernelError(`Its heartbeat did not answer for ${this.heartbeat.timeoutMs} ms.`);
      for (const p of this.pending.values()) p.fail(error);
      this.pending.clear();
    });
  }

  private logReceiveError(error: unknown): void {
    // Closing a socket ends its receive loop with an error; that is the normal way out.
    if (!this.disposed) this.logger?.error({ err: error }, 'kernel socket receive failed');
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

/** Raised by `withTimeout`; turned into a ResumeError by the caller, which knows what timed out. */
class TimeoutSignal extends Error {}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutSignal()), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function deadKernelError(detail: string): ResumeError {
  return new ResumeError('RESUME_ERR_KERNEL_DEAD', `The kernel is not running. ${detail}`, {
    status: 502,
    hint: 'The kernel process exited or its machine is unreachable; start a new kernel (its variables are lost unless a checkpoint exists).',
  });
}

function parseKernelInfo(content: unknown): KernelInfoReplyContent {
  const parsed = kernelInfoReplyContentSchema.safeParse(content);
  if (!parsed.success) {
    throw new ResumeError('RESUME_ERR_KERNEL_MESSAGE_INVALID', `Malformed kernel_info_reply: ${describeSchemaIssues(parsed.error)}.`, {
      status: 502,
      hint: 'Use a kernel that follows the Jupyter messaging protocol 5.x.',
    });
  }
  return parsed.data;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

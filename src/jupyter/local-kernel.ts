/**
 * An ipykernel process on this machine, started by us: `python -m ipykernel_launcher -f <file>`
 * with our extra arguments and environment (e.g. `--ext=jupyterhub_resume_agent`).
 *
 * The connection file is written with every port 0: the kernel binds free ports itself and
 * rewrites the file with them (ipykernel's `write_connection_file` merges into an existing file),
 * so there is no window in which another process could take a port we picked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResumeError } from '../errors.js';
import type { Logger } from '../log.js';
import { hasBoundPorts, parseConnectionInfo, type ConnectionInfo } from './connection-info.js';
import { ZmqKernelChannel, type ZmqKernelChannelOptions } from './zmq-kernel-channel.js';

/** The project's root, two levels above this file (`src/jupyter/`). */
const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The pinned virtual environment's Python (scripts/setup.sh creates it). */
export const DEFAULT_PYTHON = join(PROJECT_ROOT, '.venv', 'bin', 'python');

/** Options of `LocalKernel.start`. */
export type LocalKernelOptions = {
  /** Python interpreter with ipykernel; default the project's `.venv/bin/python`. */
  python?: string;
  /** Arguments after `-f <connection file>`, e.g. `['--ext=jupyterhub_resume_agent']`. */
  extraArgs?: string[];
  /** Environment changes over this process's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Written into the connection file as `kernel_name`; default `python3`. */
  kernelName?: string;
  /** Working directory of the kernel; default the connection file's temp dir. */
  cwd?: string;
  /** Deadline from spawn to the first `kernel_info_reply`; default 60 s. */
  startupTimeoutMs?: number;
  /** Passed to the kernel's channel. */
  channel?: Omit<ZmqKernelChannelOptions, 'connectTimeoutMs' | 'logger'>;
  logger?: Logger;
};

/** Keeps at most this much of the kernel's stdout/stderr, for error messages. */
const OUTPUT_TAIL_BYTES = 16_384;

/** Kernels still running, killed if this process exits without shutting them down. */
const running = new Set<LocalKernel>();
let exitHookInstalled = false;

/** A running local kernel with a ready ZeroMQ channel. Stop it with `shutdown()`. */
export class LocalKernel {
  private outputTail = '';
  private exitCode: number | null = null;
  private exitSignal: NodeJS.Signals | null = null;
  private spawnError: Error | null = null;
  private readonly exitedPromise: Promise<void>;
  private shutdownPromise: Promise<void> | null = null;
  private _channel: ZmqKernelChannel | null = null;

  private constructor(
    /** The kernel id, also in the connection file's name (`kernel-<id>.json`). */
    readonly kernelId: string,
    /** The temp directory holding the connection file; removed at shutdown. */
    readonly dir: string,
    /** Absolute path of the connection file. */
    readonly connectionFile: string,
    private readonly child: ChildProcess,
    private readonly logger: Logger | undefined,
  ) {
    this.exitedPromise = new Promise<void>((resolveExit) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        running.delete(this);
        resolveExit();
      });
      // A process that could not be spawned (ENOENT, EACCES) never emits 'exit'.
      child.once('error', (error) => {
        this.spawnError ??= error;
        running.delete(this);
        resolveExit();
      });
    });
    const keep = (chunk: Buffer) => {
      this.outputTail = (this.outputTail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /**
   * Starts a kernel and waits until it answers `kernel_info_request`.
   * @param options interpreter, extra arguments, environment, deadline.
   * @returns the running kernel; its `channel` is connected.
   * Throws RESUME_ERR_KERNEL_START_FAILED (with the kernel's last output) when it exits or does not
   * answer in time; nothing is left running then.
   */
  static async start(options: LocalKernelOptions = {}): Promise<LocalKernel> {
    const python = options.python ?? DEFAULT_PYTHON;
    const deadline = Date.now() + (options.startupTimeoutMs ?? 60_000);
    const kernelId = randomUUID();
    const dir = await mkdtemp(join(tmpdir(), 'jhr-kernel-'));
    const connectionFile = join(dir, `kernel-${kernelId}.json`);
    const initial: ConnectionInfo = {
      transport: 'tcp',
      ip: '127.0.0.1',
      shell_port: 0,
      iopub_port: 0,
      stdin_port: 0,
      control_port: 0,
      hb_port: 0,
      key: randomBytes(32).toString('hex'),
      signature_scheme: 'hmac-sha256',
      kernel_name: options.kernelName ?? 'python3',
    };
    // The key is a secret: only the kernel's user may read the file.
    await writeFile(connectionFile, JSON.stringify(initial, null, 1), { mode: 0o600 });

    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // ipykernel warns about frozen modules and the debugger on every start otherwise.
      PYDEVD_DISABLE_FILE_VALIDATION: '1',
    };
    for (const [name, value] of Object.entries(options.env ?? {})) {
      if (value === undefined) delete env[name];
      else env[name] = value;
    }
    let child: ChildProcess;
    try {
      child = spawn(python, ['-m', 'ipykernel_launcher', '-f', connectionFile, ...(options.extraArgs ?? [])], {
        cwd: options.cwd ?? dir,
        env,
        // Its own process group, so shutdown also ends whatever the kernel started.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (cause) {
      await rm(dir, { recursive: true, force: true });
      throw startFailed(`Could not run ${python}.`, '', cause);
    }
    const kernel = new LocalKernel(kernelId, dir, connectionFile, child, options.logger);
    running.add(kernel);
    installExitHook();
    const exitedEarly = kernel.exitedPromise.then(async (): Promise<never> => {
      throw await kernel.earlyExitError(python);
    });
    exitedEarly.catch(() => undefined);

    // Stops a handshake that lost the race to an early exit, so it does not run to its deadline.
    const giveUp = new AbortController();
    try {
      const info = await Promise.race([kernel.waitForBoundPorts(deadline, python), exitedEarly]);
      kernel._channel = await Promise.race([
        ZmqKernelChannel.connect(info, {
          ...options.channel,
          connectTimeoutMs: Math.max(1_000, deadline - Date.now()),
          signal: giveUp.signal,
          ...(options.logger ? { logger: options.logger } : {}),
        }),
        exitedEarly,
      ]);
      options.logger?.debug({ kernelId, pid: child.pid }, 'local kernel started');
      return kernel;
    } catch (error) {
      giveUp.abort();
      await kernel.shutdown();
      if (error instanceof ResumeError && error.code === 'RESUME_ERR_KERNEL_START_FAILED') throw error;
      throw startFailed(
        error instanceof Error ? error.message : String(error),
        kernel.outputTail,
        error,
      );
    }
  }

  /** The connected channel; RESUME_ERR_KERNEL_CHANNEL_CLOSED after shutdown. */
  get channel(): ZmqKernelChannel {
    if (!this._channel || this._channel.isDisposed) {
      throw new ResumeError('RESUME_ERR_KERNEL_CHANNEL_CLOSED', `Kernel ${this.kernelId} has no open channel.`, {
        status: 503,
        hint: 'The kernel was shut down; start a new one.',
      });
    }
    return this._channel;
  }

  /** The kernel's process id. */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** True once the process exited (or could not be started at all). */
  get hasExited(): boolean {
    return this.exitCode !== null || this.exitSignal !== null || this.spawnError !== null;
  }

  /** The last lines the kernel wrote to stdout/stderr (for diagnostics). */
  get output(): string {
    return this.outputTail;
  }

  /** Resolves when the kernel process has exited (for whatever reason). */
  waitForExit(): Promise<void> {
    return this.exitedPromise;
  }

  /**
   * Opens another channel to this kernel, e.g. with other heartbeat settings.
   * @param overrides fields replacing the kernel's own connection info (tests use a wrong key).
   */
  async connectChannel(
    overrides: Partial<ConnectionInfo> = {},
    options: ZmqKernelChannelOptions = {},
  ): Promise<ZmqKernelChannel> {
    const info = parseConnectionInfo(await readFile(this.connectionFile, 'utf8'), this.connectionFile);
    return ZmqKernelChannel.connect({ ...info, ...overrides }, options);
  }

  /**
   * Stops the kernel and removes its files: asks it to exit, then SIGTERM and finally SIGKILL
   * to its whole process group. Idempotent; never throws.
   * @param graceMs how long each step may take before the next, harder one.
   */
  shutdown(graceMs = 2_000): Promise<void> {
    this.shutdownPromise ??= this.stop(graceMs);
    return this.shutdownPromise;
  }

  private async stop(graceMs: number): Promise<void> {
    if (this._channel && !this._channel.isDisposed && !this.hasExited) {
      // A polite shutdown lets ipykernel remove its own files and end its threads.
      await this._channel.requestShutdown(graceMs).catch(() => undefined);
    }
    await this._channel?.dispose();
    if (!(await this.exitedWithin(graceMs))) {
      this.signalGroup('SIGTERM');
      if (!(await this.exitedWithin(graceMs))) {
        this.signalGroup('SIGKILL');
        await this.exitedWithin(graceMs);
      }
    }
    // Children of the kernel (if any) share its group; make sure none outlives it.
    this.signalGroup('SIGKILL');
    running.delete(this);
    await rm(this.dir, { recursive: true, force: true }).catch((error: unknown) => {
      this.logger?.warn({ err: error, dir: this.dir }, 'could not remove the kernel directory');
    });
  }

  /** Polls the connection file until the kernel has written its bound ports into it. */
  private async waitForBoundPorts(deadline: number, python: string): Promise<ConnectionInfo> {
    while (Date.now() < deadline) {
      if (this.hasExited) throw await this.earlyExitError(python);
      try {
        const info = parseConnectionInfo(await readFile(this.connectionFile, 'utf8'), this.connectionFile);
        if (hasBoundPorts(info)) return info;
      } catch {
        // The kernel rewrites the file in place; a half-written read is retried.
      }
      await Promise.race([delay(25), this.exitedPromise]);
    }
    throw startFailed('The kernel did not bind its ports in time.', this.outputTail);
  }

  private async earlyExitError(python: string): Promise<ResumeError> {
    if (this.spawnError) return startFailed(`Could not run ${python}: ${this.spawnError.message}.`, '', this.spawnError);
    // 'exit' can come before the last output; 'close' comes after it (unless a grandchild holds
    // the pipes open, hence the bound).
    if (this.child.stdout && !this.child.stdout.closed) {
      await Promise.race([new Promise((r) => this.child.once('close', r)), delay(500)]);
    }
    const how = this.exitSignal ? `signal ${this.exitSignal}` : `code ${this.exitCode}`;
    return startFailed(`The kernel exited during start-up (${how}).`, this.outputTail);
  }

  private async exitedWithin(ms: number): Promise<boolean> {
    if (this.hasExited) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), ms);
    });
    const result = await Promise.race([this.exitedPromise.then(() => true), timeout]);
    clearTimeout(timer);
    return result;
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // ESRCH: the group is already gone.
    }
  }

  /** Kills every kernel this process still runs (synchronous: used from the `exit` event). */
  static killAllSync(): void {
    for (const kernel of running) kernel.signalGroup('SIGKILL');
    running.clear();
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A crash or Ctrl-C of the parent must not leave kernels behind holding memory and ports.
  process.once('exit', () => LocalKernel.killAllSync());
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function startFailed(why: string, output: string, cause?: unknown): ResumeError {
  const tail = output.trim().split('\n').slice(-15).join('\n');
  return new ResumeError(
    'RESUME_ERR_KERNEL_START_FAILED',
    tail ? `Could not start a kernel: ${why}\nKernel output:\n${tail}` : `Could not start a kernel: ${why}`,
    {
      status: 500,
      hint: 'Check that the Python interpreter has ipykernel (run scripts/setup.sh to create .venv) and that extra arguments are valid.',
      cause,
    },
  );
}

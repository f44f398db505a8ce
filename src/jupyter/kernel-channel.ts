/**
 * One way to run code in a kernel, whatever carries the messages.
 *
 * Two implementations: `ZmqKernelChannel` talks ZeroMQ straight to a kernel from its connection
 * file (local kernels, `verify`); `ServerKernelChannel` goes through a Jupyter server's kernel
 * websocket (kernels of a user's server). The agent client and everything above it only see this
 * interface.
 */

/** Options of one `execute_request` (Jupyter messaging spec, "Execute"). */
export type ExecuteOptions = {
  /** Silent requests broadcast no outputs, fire no IPython events and keep the execution count. */
  silent?: boolean;
  /** Whether the cell goes into the kernel's history (default: `!silent`). */
  storeHistory?: boolean;
  /** Expressions evaluated after `code` succeeded; answered in `userExpressions` by key. */
  userExpressions?: Record<string, string>;
  /** Deadline for the reply and the kernel's `idle` status; default 60 s. */
  timeoutMs?: number;
  /** Whether the kernel aborts requests queued behind this one if it fails (default true). */
  stopOnError?: boolean;
  /** The notebook cell being run, sent as JupyterLab does (message metadata `cellId`). */
  cellId?: string;
};

/** One output of an execution, in the order the kernel sent it on iopub. */
export type KernelOutput =
  | { type: 'stream'; name: 'stdout' | 'stderr'; text: string }
  | { type: 'display_data'; data: Record<string, unknown>; metadata: Record<string, unknown> }
  | {
      type: 'execute_result';
      executionCount: number | null;
      data: Record<string, unknown>;
      metadata: Record<string, unknown>;
    }
  | { type: 'error'; ename: string; evalue: string; traceback: string[] };

/** The value of one user expression: its mime bundle, or the exception it raised. */
export type UserExpressionResult =
  | { status: 'ok'; data: Record<string, unknown>; metadata: Record<string, unknown> }
  | { status: 'error'; ename: string; evalue: string; traceback: string[] };

/** What an execution produced: the reply plus every iopub output that belongs to it. */
export type ExecuteResult = {
  status: 'ok' | 'error' | 'aborted';
  /** The kernel's counter after the request (unchanged by silent requests). */
  executionCount: number | null;
  userExpressions: Record<string, UserExpressionResult>;
  outputs: KernelOutput[];
  /** Set when `status` is `error`: the exception the code raised. */
  error?: { ename: string; evalue: string; traceback: string[] };
};

/** Runs code in one kernel. */
export interface KernelChannel {
  /**
   * Sends an `execute_request` and waits for its reply and for the kernel to go idle.
   * @param code the cell source; `''` for a request that only evaluates user expressions.
   * @returns the reply and the outputs, in order.
   * Notes: a request queues behind a cell that is running; `timeoutMs` bounds the whole wait.
   * A failing cell resolves with `status: 'error'`; only transport problems (timeout, dead
   * kernel, disposed channel, invalid messages) reject, with a ResumeError.
   */
  execute(code: string, options?: ExecuteOptions): Promise<ExecuteResult>;
  /** Interrupts the cell that is running, if the transport can. */
  interrupt?(): Promise<void>;
  /** Closes the connection (never the kernel itself) and fails pending requests. Idempotent. */
  dispose(): Promise<void>;
  /** True once `dispose()` was called. */
  readonly isDisposed: boolean;
}

/** Default deadline of one execute request. */
export const DEFAULT_EXECUTE_TIMEOUT_MS = 60_000;

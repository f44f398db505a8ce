/**
 * Typed commands to the agent inside a kernel (docs/reference/agent-protocol.md, "Commands"),
 * over any KernelChannel.
 *
 * A command is a silent execute whose one user expression calls the agent; the answer comes back
 * as that expression's `application/json` value. Silent requests keep the user's execution count
 * and fire no IPython events, so commands never appear in the user's history.
 */
import { z } from 'zod';
import { ResumeError } from '../errors.js';
import type { KernelChannel, UserExpressionResult } from '../jupyter/kernel-channel.js';
import { describeSchemaIssues } from '../jupyter/kernel-messages.js';
import {
  AGENT_PROTOCOL_VERSION,
  agentErrorSchema,
  agentStatusSchema,
  descriptionSchema,
  flushResultSchema,
  historySchema,
  manifestSchema,
  restoreReportSchema,
  type AgentRequest,
  type AgentStatus,
  type CheckpointBase,
  type Cell,
  type Description,
  type FlushResult,
  type Manifest,
  type RestorePlan,
  type RestoreReport,
  type Target,
} from './agent-messages.js';

/** The agent's Python package name. */
export const AGENT_PACKAGE = 'jupyterhub_resume_agent';

/** Per-call options. */
export type AgentCommandOptions = {
  /** Deadline for the command, including time queued behind a running cell. */
  timeoutMs?: number;
};

/** Default deadlines: quick questions vs. commands that move a session's data. */
const QUICK_TIMEOUT_MS = 30_000;
const HEAVY_TIMEOUT_MS = 600_000;

/**
 * Builds the user expression that runs one command, exactly as the protocol defines it: the
 * request as a JSON string, written as a JSON string literal (which is also a Python literal).
 * @param request the command.
 * @returns the Python expression.
 */
export function buildCommandExpression(request: AgentRequest): string {
  return `__import__('${AGENT_PACKAGE}').command(${JSON.stringify(JSON.stringify(request))})`;
}

/** Sends commands to the agent of one kernel. */
export class AgentClient {
  private readonly defaultTimeoutMs: number | undefined;

  /**
   * @param channel a channel to the kernel; the client does not own it (never disposes it).
   * @param options `timeoutMs` overrides every command's default deadline.
   */
  constructor(
    readonly channel: KernelChannel,
    options: { timeoutMs?: number } = {},
  ) {
    this.defaultTimeoutMs = options.timeoutMs;
  }

  /**
   * Asks the agent who it is and how far its records got.
   * Throws RESUME_ERR_AGENT_PROTOCOL_MISMATCH when it speaks another protocol version.
   */
  async status(options: AgentCommandOptions = {}): Promise<AgentStatus> {
    const status = await this.command({ op: 'status' }, agentStatusSchema, options, QUICK_TIMEOUT_MS);
    checkProtocol(status.protocol, 'status');
    return status;
  }

  /**
   * Waits until every recorded cell reached the service.
   * @param timeoutS how long the agent itself waits for its uploads.
   */
  async flush(timeoutS = 10, options: AgentCommandOptions = {}): Promise<FlushResult> {
    // The kernel waits up to timeoutS; give the request that long plus a margin.
    const fallback = timeoutS * 1000 + QUICK_TIMEOUT_MS;
    return this.command({ op: 'flush', timeout_s: timeoutS }, flushResultSchema, options, fallback);
  }

  /** Every cell this kernel run recorded, after the cells of the checkpoint it was restored from. */
  async history(options: AgentCommandOptions = {}): Promise<Cell[]> {
    return (await this.command({ op: 'history' }, historySchema, options, QUICK_TIMEOUT_MS)).cells;
  }

  /**
   * Serializes every user variable into `target` and returns the manifest.
   * @param checkpointId the id the manifest and blob keys belong to.
   * @param target where the blobs go (`http` with a grant, or a `dir`).
   * @param options.recompute names the plan rebuilds from history instead of storing.
   * @param options.base the session's last complete checkpoint: groups unchanged since it are
   *   referenced (`stored_in`) instead of written again.
   */
  async checkpoint(
    checkpointId: string,
    target: Target,
    options: AgentCommandOptions & { recompute?: string[]; base?: CheckpointBase } = {},
  ): Promise<Manifest> {
    const request: AgentRequest = { op: 'checkpoint', checkpoint_id: checkpointId, target };
    if (options.recompute !== undefined) request.recompute = options.recompute;
    if (options.base !== undefined) request.base = options.base;
    const manifest = await this.command(
      request,
      manifestSchema,
      options,
      HEAVY_TIMEOUT_MS,
    );
    checkProtocol(manifest.protocol, 'checkpoint');
    return manifest;
  }

  /**
   * Loads a checkpoint into this kernel: imports, stored groups, then re-runs cells for the rest.
   * @param manifest the manifest `checkpoint` returned.
   * @param cells the history to re-run from (the checkpointed kernel's `history()`).
   * @param source where the blobs are.
   * @param options.plan which cells to re-run and where to bind each group (`restorePlanFor`);
   *   without it the agent re-runs every cell from the first that made a missing variable.
   */
  async restore(
    manifest: Manifest,
    cells: Cell[],
    source: Target,
    options: AgentCommandOptions & { plan?: RestorePlan } = {},
  ): Promise<RestoreReport> {
    const request: AgentRequest = { op: 'restore', manifest, cells, source };
    if (options.plan !== undefined) request.plan = options.plan;
    return this.command(request, restoreReportSchema, options, HEAVY_TIMEOUT_MS);
  }

  /** Fingerprints of every user variable and its aliases (for `verify`). */
  async describe(options: AgentCommandOptions = {}): Promise<Description> {
    return this.command({ op: 'describe' }, descriptionSchema, options, HEAVY_TIMEOUT_MS);
  }

  /**
   * Runs one command and validates its answer.
   * @param request the command.
   * @param schema the answer's schema.
   * @param fallbackTimeoutMs deadline when neither the call nor the client sets one.
   */
  private async command<S extends z.ZodType>(
    request: AgentRequest,
    schema: S,
    options: AgentCommandOptions,
    fallbackTimeoutMs: number,
  ): Promise<z.infer<S>> {
    const reply = await this.channel.execute('', {
      silent: true,
      storeHistory: false,
      userExpressions: { r: buildCommandExpression(request) },
      timeoutMs: options.timeoutMs ?? this.defaultTimeoutMs ?? fallbackTimeoutMs,
      // A failing command must not abort cells the user queued behind it.
      stopOnError: false,
    });
    if (reply.status === 'aborted') {
      // stop_on_error: a user cell queued before the command failed, and the kernel dropped the queue.
      throw commandFailed(request.op, 'the kernel aborted it because a cell queued before it raised an error; send it again');
    }
    if (reply.status !== 'ok') {
      throw commandFailed(request.op, `the kernel answered ${reply.status}${reply.error ? ` (${reply.error.ename}: ${reply.error.evalue})` : ''}`);
    }
    const answer = unwrapExpression(request.op, reply.userExpressions['r']);
    const failure = agentErrorSchema.safeParse(answer);
    if (failure.success) throw fromAgentError(request.op, failure.data.error);
    const parsed = schema.safeParse(answer);
    if (!parsed.success) {
      throw protocolMismatch(`The agent's answer to ${request.op} does not match protocol ${AGENT_PROTOCOL_VERSION}: ${describeSchemaIssues(parsed.error)}.`);
    }
    return parsed.data;
  }
}

/** Turns the expression's result into the JSON answer, or the matching ResumeError. */
function unwrapExpression(op: string, result: UserExpressionResult | undefined): unknown {
  if (result === undefined) {
    throw protocolMismatch(`The kernel evaluated no user expression for ${op}.`);
  }
  if (result.status === 'error') {
    const notImportable =
      (result.ename === 'ModuleNotFoundError' || result.ename === 'ImportError') && result.evalue.includes(AGENT_PACKAGE);
    if (notImportable) {
      throw new ResumeError('RESUME_ERR_AGENT_NOT_LOADED', `The kernel cannot import ${AGENT_PACKAGE}: ${result.evalue}.`, {
        status: 409,
        hint: `Start the kernel with --ext=${AGENT_PACKAGE} and src/agent/python on PYTHONPATH (the hub's kernelspec does this), or inject the agent into the running kernel.`,
      });
    }
    if (result.ename === 'AttributeError' && result.evalue.includes("'command'")) {
      throw protocolMismatch(`The kernel's ${AGENT_PACKAGE} has no command() entry point (${result.evalue}).`);
    }
    throw commandFailed(op, `the agent raised ${result.ename}: ${result.evalue}`);
  }
  if (!('application/json' in result.data)) {
    throw protocolMismatch(`The agent answered ${op} without an application/json value.`);
  }
  return result.data['application/json'];
}

/**
 * Maps an `{error}` answer to a ResumeError. The agent's own code (`RESUME_ERR_AGENT_*`) is kept
 * in the message and context; two of them mean something the caller acts on.
 */
function fromAgentError(op: string, error: { type: string; message: string; hint?: unknown }): ResumeError {
  const agentHint = typeof error.hint === 'string' ? error.hint : undefined;
  const context = { agentCode: error.type };
  if (error.type === 'RESUME_ERR_AGENT_NOT_LOADED') {
    // Importable but never loaded as an extension: injectAgent() loads it.
    return new ResumeError('RESUME_ERR_AGENT_NOT_LOADED', `The agent is not loaded in this kernel: ${error.message}.`, {
      status: 409,
      hint: agentHint ?? 'Load it with %load_ext jupyterhub_resume_agent, or let the service inject it.',
      context,
    });
  }
  if (error.type === 'RESUME_ERR_AGENT_BAD_REQUEST') {
    return new ResumeError('RESUME_ERR_AGENT_PROTOCOL_MISMATCH', `The agent rejected the ${op} request: ${error.message}.`, {
      status: 502,
      hint: 'The agent in the kernel and this service come from different versions of jupyterhub-resume; restart the kernel so it loads the agent shipped with the service.',
      context,
    });
  }
  return new ResumeError('RESUME_ERR_AGENT_COMMAND_FAILED', `The agent command ${op} failed: ${error.type}: ${error.message}.`, {
    status: 502,
    hint: agentHint ?? 'The message above is the agent\'s own; the kernel\'s log has its traceback.',
    context,
  });
}

function checkProtocol(protocol: number, op: string): void {
  if (protocol !== AGENT_PROTOCOL_VERSION) {
    throw protocolMismatch(`The agent answered ${op} with protocol ${protocol}; this service speaks ${AGENT_PROTOCOL_VERSION}.`);
  }
}

function commandFailed(op: string, why: string): ResumeError {
  return new ResumeError('RESUME_ERR_AGENT_COMMAND_FAILED', `The agent command ${op} failed: ${why}.`, {
    status: 502,
    hint: 'The message above is the agent\'s own; the kernel\'s log has its traceback.',
  });
}

function protocolMismatch(message: string): ResumeError {
  return new ResumeError('RESUME_ERR_AGENT_PROTOCOL_MISMATCH', message, {
    status: 502,
    hint: 'The agent in the kernel and this service come from different versions of jupyterhub-resume; restart the kernel so it loads the agent shipped with the service.',
  });
}

/**
 * Gathers everything one `execute_request` caused: its iopub outputs in order and its reply.
 * Done when both the reply and the kernel's `idle` status (with this request as parent) arrived,
 * as the messaging spec defines the end of a request.
 *
 * Both kernel channels feed messages into it, so outputs and replies are validated and shaped in
 * one place.
 */
import { z } from 'zod';
import { ResumeError } from '../errors.js';
import type { ExecuteResult, KernelOutput, UserExpressionResult } from './kernel-channel.js';
import {
  clearOutputContentSchema,
  describeSchemaIssues,
  displayDataContentSchema,
  errorContentSchema,
  executeReplyContentSchema,
  executeResultContentSchema,
  statusContentSchema,
  streamContentSchema,
} from './kernel-messages.js';

/** Collects the outputs and reply of one execute request; resolves `done` when it is complete. */
export class ExecuteCollector {
  /** Resolves with the result once reply and idle arrived; rejects on `fail()` or bad messages. */
  readonly done: Promise<ExecuteResult>;
  private outputs: KernelOutput[] = [];
  private clearOnNextOutput = false;
  private reply: z.infer<typeof executeReplyContentSchema> | null = null;
  private idle = false;
  private settled = false;
  private resolve!: (result: ExecuteResult) => void;
  private reject!: (error: unknown) => void;

  /** @param msgId the request's `msg_id`, used in error messages only. */
  constructor(readonly msgId: string) {
    this.done = new Promise<ExecuteResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // The owner may fail a collector nobody awaits yet (timeout during setup); never unhandled.
    this.done.catch(() => undefined);
  }

  /** True once `done` resolved or rejected. */
  get isSettled(): boolean {
    return this.settled;
  }

  /**
   * Takes one iopub message whose parent is this request.
   * @param msgType the message's `header.msg_type`.
   * @param content the message's content, not validated yet.
   */
  handleIOPub(msgType: string, content: unknown): void {
    if (this.settled) return;
    switch (msgType) {
      case 'status': {
        const status = this.parse(statusContentSchema, content, msgType);
        if (status?.execution_state === 'idle') {
          this.idle = true;
          this.finishIfComplete();
        }
        return;
      }
      case 'stream': {
        const c = this.parse(streamContentSchema, content, msgType);
        if (c) this.push({ type: 'stream', name: c.name, text: c.text });
        return;
      }
      case 'display_data': {
        const c = this.parse(displayDataContentSchema, content, msgType);
        if (c) this.push({ type: 'display_data', data: c.data, metadata: c.metadata });
        return;
      }
      case 'execute_result': {
        const c = this.parse(executeResultContentSchema, content, msgType);
        if (c) {
          this.push({
            type: 'execute_result',
            executionCount: c.execution_count ?? null,
            data: c.data,
            metadata: c.metadata,
          });
        }
        return;
      }
      case 'error': {
        const c = this.parse(errorContentSchema, content, msgType);
        if (c) this.push({ type: 'error', ename: c.ename, evalue: c.evalue, traceback: c.traceback });
        return;
      }
      case 'clear_output': {
        const c = this.parse(clearOutputContentSchema, content, msgType);
        if (c?.wait) this.clearOnNextOutput = true;
        else if (c) this.outputs = [];
        return;
      }
      default:
        // execute_input, update_display_data, comm_* …: not outputs of the cell as we report them.
        return;
    }
  }

  /** Takes the `execute_reply` content of this request (not validated yet). */
  handleReply(content: unknown): void {
    if (this.settled) return;
    const reply = this.parse(executeReplyContentSchema, content, 'execute_reply');
    if (!reply) return;
    this.reply = reply;
    this.finishIfComplete();
  }

  /** Rejects `done` with `error` unless it already settled. */
  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(error);
  }

  private push(output: KernelOutput): void {
    if (this.clearOnNextOutput) {
      this.outputs = [];
      this.clearOnNextOutput = false;
    }
    this.outputs.push(output);
  }

  private parse<S extends z.ZodType>(schema: S, content: unknown, msgType: string): z.infer<S> | null {
    const parsed = schema.safeParse(content);
    if (parsed.success) return parsed.data;
    this.fail(
      new ResumeError(
        'RESUME_ERR_KERNEL_MESSAGE_INVALID',
        `The kernel sent a malformed ${msgType} message for request ${this.msgId}: ${describeSchemaIssues(parsed.error)}`,
        {
          status: 502,
          hint: 'The kernel does not follow the Jupyter messaging protocol 5.x; use an IPython kernel (ipykernel 6 or later).',
        },
      ),
    );
    return null;
  }

  private finishIfComplete(): void {
    if (!this.reply || !this.idle || this.settled) return;
    this.settled = true;
    const reply = this.reply;
    const userExpressions: Record<string, UserExpressionResult> = {};
    for (const [key, value] of Object.entries(reply.user_expressions)) {
      userExpressions[key] =
        value.status === 'ok'
          ? { status: 'ok', data: value.data, metadata: value.metadata }
          : { status: 'error', ename: value.ename, evalue: value.evalue, traceback: value.traceback };
    }
    const result: ExecuteResult = {
      status: reply.status,
      executionCount: reply.execution_count ?? null,
      userExpressions,
      outputs: this.outputs,
    };
    if (reply.status === 'error') {
      result.error = {
        ename: reply.ename ?? 'Error',
        evalue: reply.evalue ?? '',
        traceback: reply.traceback ?? [],
      };
    }
    this.resolve(result);
  }
}

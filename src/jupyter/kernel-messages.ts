/**
 * Schemas of the kernel messages we read (Jupyter messaging spec 5.x), checked with zod because
 * they cross a process boundary, plus the `execute_request` content we send.
 *
 * Only the fields we use are checked; unknown fields are allowed (kernels add their own).
 */
import { z } from 'zod';
import type { ExecuteOptions } from './kernel-channel.js';

const mimeBundle = z.record(z.string(), z.unknown());
const metadata = z.record(z.string(), z.unknown()).optional().default({});

/** A message header; `msg_id` and `msg_type` are all we route on. */
export const headerSchema = z.looseObject({
  msg_id: z.string(),
  msg_type: z.string(),
  session: z.string().optional(),
});

/** A parent header: empty for messages not caused by a request (e.g. `iopub_welcome`). */
export const parentHeaderSchema = z.union([headerSchema, z.looseObject({})]);

/** `status` on iopub. */
export const statusContentSchema = z.looseObject({
  execution_state: z.string(),
});

/** `stream` on iopub. */
export const streamContentSchema = z.looseObject({
  name: z.enum(['stdout', 'stderr']),
  text: z.string(),
});

/** `display_data` on iopub. */
export const displayDataContentSchema = z.looseObject({
  data: mimeBundle,
  metadata,
});

/** `execute_result` on iopub. */
export const executeResultContentSchema = z.looseObject({
  execution_count: z.number().int().nullable().optional(),
  data: mimeBundle,
  metadata,
});

/** `error` on iopub, and the error part of replies and user expressions. */
export const errorContentSchema = z.looseObject({
  ename: z.string(),
  evalue: z.string(),
  traceback: z.array(z.string()).optional().default([]),
});

/** `clear_output` on iopub. */
export const clearOutputContentSchema = z.looseObject({
  wait: z.boolean().optional().default(false),
});

/** One entry of `execute_reply.user_expressions`. */
export const userExpressionSchema = z.discriminatedUnion('status', [
  z.looseObject({ status: z.literal('ok'), data: mimeBundle, metadata }),
  z.looseObject({
    status: z.literal('error'),
    ename: z.string(),
    evalue: z.string(),
    traceback: z.array(z.string()).optional().default([]),
  }),
]);

/** `execute_reply` on shell. `user_expressions` is only present when the code succeeded. */
export const executeReplyContentSchema = z.looseObject({
  status: z.enum(['ok', 'error', 'aborted']),
  execution_count: z.number().int().nullable().optional(),
  user_expressions: z.record(z.string(), userExpressionSchema).optional().default({}),
  ename: z.string().optional(),
  evalue: z.string().optional(),
  traceback: z.array(z.string()).optional(),
});

/** `kernel_info_reply` on shell. */
export const kernelInfoReplyContentSchema = z.looseObject({
  status: z.string().optional(),
  protocol_version: z.string(),
  implementation: z.string().optional(),
  implementation_version: z.string().optional(),
  language_info: z.looseObject({ name: z.string() }).optional(),
});

/** A validated `execute_reply` content. */
export type ExecuteReplyContent = z.infer<typeof executeReplyContentSchema>;
/** A validated `kernel_info_reply` content. */
export type KernelInfoReplyContent = z.infer<typeof kernelInfoReplyContentSchema>;

/** The metadata of an `execute_request`: the cell's id, as JupyterLab sends it (ipykernel passes it to IPython). */
export function buildExecuteRequestMetadata(options: ExecuteOptions = {}): { cellId?: string } {
  return options.cellId === undefined ? {} : { cellId: options.cellId };
}

/**
 * Builds the content of an `execute_request`.
 * @param code the source to run.
 * @param options silent/history/expressions flags; defaults follow the spec.
 * @returns the JSON content, ready to sign and send.
 */
export function buildExecuteRequestContent(
  code: string,
  options: ExecuteOptions = {},
): {
  code: string;
  silent: boolean;
  store_history: boolean;
  user_expressions: Record<string, string>;
  allow_stdin: boolean;
  stop_on_error: boolean;
} {
  const silent = options.silent ?? false;
  return {
    code,
    silent,
    // The spec forces store_history off for silent requests; say so explicitly.
    store_history: silent ? false : (options.storeHistory ?? true),
    user_expressions: options.userExpressions ?? {},
    // Nobody answers input() for us: a cell asking for input gets an error at once, not a hang.
    allow_stdin: false,
    stop_on_error: options.stopOnError ?? true,
  };
}

/** A short, human description of why a message failed its schema (first issues only). */
export function describeSchemaIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

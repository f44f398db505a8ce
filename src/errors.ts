/**
 * The one error type the service raises on purpose.
 *
 * Every expected failure carries a stable `code` (`RESUME_ERR_<AREA>_<WHAT>`), a message that says
 * what went wrong, a `hint` that says what a person can do about it, an HTTP `status` for the API,
 * and structured `context` (user, server, kernel, checkpoint id) for the logs. The original error, if
 * any, is kept as `cause`. docs/reference/errors.md lists every code.
 */
export type ErrorContext = {
  user?: string;
  server?: string;
  kernelId?: string;
  runId?: string;
  checkpointId?: string;
  [key: string]: unknown;
};

export class ResumeError extends Error {
  readonly code: string;
  readonly status: number;
  readonly hint: string | undefined;
  readonly context: ErrorContext;

  constructor(
    code: string,
    message: string,
    options: { status?: number; hint?: string; context?: ErrorContext; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ResumeError';
    this.code = code;
    this.status = options.status ?? 500;
    this.hint = options.hint;
    this.context = options.context ?? {};
  }

  /** The body an API answers with: never a stack, never a secret. */
  toJSON(): { code: string; message: string; hint?: string } {
    return this.hint === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, hint: this.hint };
  }
}

export const isResumeError = (e: unknown): e is ResumeError => e instanceof ResumeError;

/**
 * Reading the body of a blob upload, the same way in every object store: piece by piece as
 * Buffers, and never destroying it. The body is usually an HTTP request; when the store fails half
 * way, the handler must still be able to answer on it, so a store never lets a failing pipeline
 * destroy the caller's stream.
 */
import type { Readable } from 'node:stream';
import { ResumeError, type ErrorContext } from '../errors.js';
import { toBytes } from './digest-stream.js';

/**
 * The body's pieces. Stopping early (a `break`, a store error thrown in the loop) detaches from
 * the body and leaves it as it is.
 * @throws ResumeError RESUME_ERR_BLOB_UPLOAD_ABORTED (400) when the body fails, or yields
 *   something other than bytes.
 */
export async function* bodyPieces(body: Readable, context: ErrorContext): AsyncGenerator<Buffer> {
  const pieces = body.iterator({ destroyOnReturn: false });
  try {
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await pieces.next();
      } catch (cause) {
        throw uploadAborted('the blob upload stream failed before its end', 'Upload the blob again; nothing of this attempt was kept.', context, cause);
      }
      if (next.done === true) return;
      const piece = toBytes(next.value);
      if (piece === null) {
        throw uploadAborted('the blob upload stream produced something other than bytes', 'Send the blob as a byte stream (application/octet-stream).', context);
      }
      yield piece;
    }
  } finally {
    await pieces.return?.();
  }
}

function uploadAborted(message: string, hint: string, context: ErrorContext, cause?: unknown): ResumeError {
  return new ResumeError('RESUME_ERR_BLOB_UPLOAD_ABORTED', message, {
    status: 400,
    hint,
    context,
    ...(cause === undefined ? {} : { cause }),
  });
}

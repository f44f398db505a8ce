/**
 * The expected failures of the Postgres stores that callers act on: something does not exist, or a
 * checkpoint is in a state that forbids the change. (Database failures come from map-pg-error.ts.)
 */
import { ResumeError } from '../../errors.js';

/** RESUME_ERR_RUN_NOT_FOUND (404): unknown run, or not a run of the given session. */
export function runNotFound(runId: string): ResumeError {
  return new ResumeError('RESUME_ERR_RUN_NOT_FOUND', `kernel run ${runId} does not exist (in that session)`, {
    status: 404,
    hint: 'The kernel must register (POST api/agent/kernels) before it records cells or checkpoints.',
    context: { runId },
  });
}

/** RESUME_ERR_SESSION_NOT_FOUND (404). */
export function sessionNotFound(sessionId: string): ResumeError {
  return new ResumeError('RESUME_ERR_SESSION_NOT_FOUND', `kernel session ${sessionId} does not exist`, {
    status: 404,
    hint: 'Create the session with upsertSession first; it may have been deleted.',
    context: { sessionId },
  });
}

/** RESUME_ERR_CHECKPOINT_NOT_FOUND (404): unknown checkpoint, or not one of the given session. */
export function checkpointNotFound(checkpointId: string): ResumeError {
  return new ResumeError('RESUME_ERR_CHECKPOINT_NOT_FOUND', `checkpoint ${checkpointId} does not exist (in that session)`, {
    status: 404,
    hint: 'List the session’s checkpoints to pick an existing one; it may have been deleted.',
    context: { checkpointId },
  });
}

/** RESUME_ERR_CHECKPOINT_NOT_WRITING (409): a committed or failed checkpoint (and its blobs) never changes. */
export function checkpointNotWriting(checkpointId: string, state: string): ResumeError {
  return new ResumeError('RESUME_ERR_CHECKPOINT_NOT_WRITING', `checkpoint ${checkpointId} is ${state}, not writing`, {
    status: 409,
    hint: 'A committed or failed checkpoint never changes; start a new checkpoint to save the session again.',
    context: { checkpointId, state },
  });
}

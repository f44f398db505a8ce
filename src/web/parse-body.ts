import type { z } from 'zod';
import { ResumeError } from '../errors.js';

/**
 * Validates a request body, or answers 400 with every problem and where it is
 * (e.g. `cells.3.seq: expected number`), so the caller can fix the request in one go.
 */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues
    .slice(0, 20)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.message}`);
  throw new ResumeError('RESUME_ERR_REQUEST_INVALID', `Invalid request: ${problems.join('; ')}`, {
    status: 400,
    hint: 'See docs/reference/rest-api.md for the expected shape.',
  });
}

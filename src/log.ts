import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Paths that may hold a secret anywhere in a logged object. Tokens travel in headers and in our
 * own option objects; none of them may reach a log line (DESIGN: "never secrets or tokens").
 */
const REDACT_PATHS = [
  'token',
  'apiToken',
  'grant',
  'password',
  'secret',
  'grantSecret',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  '*.token',
  '*.apiToken',
  '*.grant',
  '*.password',
  '*.secret',
  '*.authorization',
  'databaseUrl',
  '*.databaseUrl',
];

/**
 * Creates the service logger: JSON lines on stderr, secrets redacted, level from config.
 * @param options.level pino level name; `silent` in tests that assert on nothing logged.
 * @param options.name the component, shown as `name` on every line.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'jupyterhub-resume',
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // Query strings can carry tokens (older hubs accept ?token=); log paths only.
      serializers: { url: (u: unknown) => (typeof u === 'string' ? u.split('?')[0] : u) },
    },
    pino.destination(2),
  );
}

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Paths that may hold a secret anywhere in a logged object. Tokens travel in headers and in our
 * own option objects; none of them may reach a log line (DESIGN: "never secrets or tokens").
 */
const SECRET_KEYS = ['token', 'apiToken', 'hubApiToken', 'grant', 'grantSecret', 'password', 'secret', 'databaseUrl'];
const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * Creates the service logger: JSON lines on stderr, secrets redacted, level from config.
 * @param options.level pino level name; `silent` in tests that assert on nothing logged.
 * @param options.name the component, shown as `name` on every line.
 * @param options.destination where lines go (default: stderr).
 */
export function createLogger(
  options: { level?: string; name?: string; destination?: DestinationStream } = {},
): Logger {
  return pino(
    {
      name: options.name ?? 'jupyterhub-resume',
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // Query strings can carry tokens (older hubs accept ?token=); log paths only.
      serializers: { url: (u: unknown) => (typeof u === 'string' ? u.split('?')[0] : u) },
    },
    options.destination ?? pino.destination(2),
  );
}

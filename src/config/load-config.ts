import { ResumeError } from '../errors.js';
import { type Config, configSchema, SETTINGS, type SettingName } from './config-schema.js';

/**
 * Builds the service configuration: explicit options (CLI flags) win over the environment, which
 * wins over defaults. Every problem is collected into one RESUME_ERR_CONFIG_INVALID that names the
 * setting, where it came from, and what is wrong, so an admin fixes them all in one go.
 *
 * @param env the process environment (or a test's).
 * @param options values from CLI flags, by setting name; `undefined` means "not given".
 * @returns a frozen Config. No module reads `process.env` after this.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv,
  options: Partial<Record<SettingName, string | boolean | undefined>> = {},
): Config {
  const raw: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const spec = SETTINGS[name];
    const fromOption = options[name];
    if (fromOption !== undefined) {
      raw[name] = fromOption;
      source[name] = spec.flag;
    } else if (env[spec.env] !== undefined && env[spec.env] !== '') {
      raw[name] = env[spec.env];
      source[name] = spec.env;
    }
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '') as SettingName;
      const spec = SETTINGS[name];
      if (spec === undefined) return issue.message;
      const where = source[name] ?? `${spec.env} (or ${spec.flag})`;
      const missing = raw[name] === undefined;
      if (missing && issue.code === 'custom') return `${where} ${issue.message}`;
      return missing ? `${where} is not set: ${spec.description}` : `${where} ${issue.message}`;
    });
    throw new ResumeError('RESUME_ERR_CONFIG_INVALID', `Invalid configuration:\n  - ${problems.join('\n  - ')}`, {
      status: 500,
      hint:
        'Run jupyterhub-resume as a hub service (the hub sets JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN), ' +
        'set DATABASE_URL, and see docs/reference/configuration.md for every setting.',
    });
  }

  const c = parsed.data;
  const serviceUrl = new URL(c.serviceUrl);
  const port = Number(serviceUrl.port || (serviceUrl.protocol === 'https:' ? 443 : 80));
  const agentUrl = c.agentUrl ?? `${c.serviceUrl}${c.servicePrefix}`;
  return Object.freeze({
    ...c,
    agentUrl: agentUrl.endsWith('/') ? agentUrl : `${agentUrl}/`,
    // A quarter of the timeout keeps the worst-case overshoot small; 5 minutes is plenty for hour-long timeouts.
    cullEveryS: c.cullEveryS ?? Math.max(1, Math.min(300, Math.floor(c.cullTimeoutS / 4))),
    listen: { host: serviceUrl.hostname, port },
  });
}

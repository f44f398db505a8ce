/**
 * hub-config/*.py run by the venv's real Python, traitlets and JupyterHub spawner classes: the
 * parts a running hub does not show (merging with config already there, chaining hooks, spawning
 * the same server twice). The running hub itself is tested in http-hub-client.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PYTHON = path.join(REPO, '.venv', 'bin', 'python');

/** Runs `body` after a prelude that imports hub-config; returns what it `emit()`s, as JSON. */
function runPython(body: string, env: Record<string, string> = {}): unknown {
  const prelude = [
    'import asyncio, json, os, sys',
    `sys.path.insert(0, ${JSON.stringify(path.join(REPO, 'hub-config'))})`,
    'from traitlets.config import Config',
    'from jupyterhub.spawner import LocalProcessSpawner',
    'from resume_service import configure_resume_service, SERVICE_SCOPES',
    'from resume_hooks import install_resume_hooks, kernelspec',
    'def emit(x): print("RESULT " + json.dumps(x))',
  ].join('\n');
  const out = execFileSync(PYTHON, ['-c', `${prelude}\n${body}`], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no result in:\n${out}`);
  return JSON.parse(line.slice('RESULT '.length));
}

type Role = { name: string; scopes: string[]; services?: string[] };
type Service = { name: string; url?: string; api_token?: string; oauth_no_confirm?: boolean; display?: boolean };

describe('hub-config/resume_service.py', () => {
  it('registers the external service with OAuth confirmation skipped', () => {
    const services = runPython(`
c = Config()
configure_resume_service(c, url="http://127.0.0.1:10101", api_token="t" * 32)
emit(c.JupyterHub.services)`) as Service[];
    assert.deepEqual(services, [
      { name: 'resume', url: 'http://127.0.0.1:10101', api_token: 't'.repeat(32), oauth_no_confirm: true, display: true },
    ]);
  });

  it('gives the service exactly its five scopes and lets users use the service', () => {
    const roles = runPython(`
c = Config()
configure_resume_service(c, url="http://svc:8080", api_token="t" * 32, name="resume2", display=False)
emit(c.JupyterHub.load_roles)`) as Role[];
    const service = roles.find((r) => r.services?.includes('resume2'));
    assert.deepEqual([...(service?.scopes ?? [])].sort(), ['access:servers', 'delete:servers', 'list:users', 'read:servers']);
    assert.deepEqual(roles.find((r) => r.name === 'user')?.scopes, ['self', 'access:services!service=resume2']);
  });

  it('keeps services and a user role configured earlier, and is harmless when called twice', () => {
    const result = runPython(`
c = Config()
c.JupyterHub.services.append({"name": "other", "api_token": "o" * 32})
c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=other"]}]
configure_resume_service(c, url="http://a:1", api_token="t" * 32)
configure_resume_service(c, url="http://b:2", api_token="u" * 32)
emit({"services": c.JupyterHub.services, "roles": c.JupyterHub.load_roles})`) as { services: Service[]; roles: Role[] };
    assert.deepEqual(
      result.services.map((s) => [s.name, s.url]),
      [
        ['other', undefined],
        ['resume', 'http://b:2'],
      ],
    );
    assert.deepEqual(
      result.roles.map((r) => r.name),
      ['user', 'resume-service'],
    );
    assert.deepEqual(result.roles[0]?.scopes, ['self', 'access:services!service=other', 'access:services!service=resume']);
  });

  it('refuses an empty token with a message saying what to do', () => {
    const result = runPython(`
try:
    configure_resume_service(Config(), url="http://a:1", api_token="")
    emit(None)
except ValueError as e:
    emit(str(e))`) as string;
    assert.match(result, /api_token is empty.*JUPYTERHUB_API_TOKEN/);
  });
});

describe('hub-config/resume_hooks.py', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'jhr-hooks-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('writes the agent kernelspec where JUPYTER_PATH will point', () => {
    const dir = path.join(tmp, 'spec');
    runPython(`
install_resume_hooks(Config(), service_url="http://svc/services/resume/", agent_path="/agent", kernelspec_dir=${JSON.stringify(dir)})
emit(True)`);
    const spec = JSON.parse(readFileSync(path.join(dir, 'kernels', 'python3', 'kernel.json'), 'utf8')) as { argv: string[]; language: string };
    assert.deepEqual(spec.argv, ['python', '-m', 'ipykernel_launcher', '-f', '{connection_file}', '--ext=jupyterhub_resume_agent']);
    assert.equal(spec.language, 'python');
  });

  it('prepends the agent and kernelspec to what the server would get, once, however often it spawns', () => {
    const env = runPython(
      `
c = Config()
c.Spawner.environment = {"JUPYTER_PATH": lambda spawner: "/site/jupyter"}
install_resume_hooks(c, service_url="http://svc:8080/services/resume", agent_path="/opt/agent", kernelspec_dir=${JSON.stringify(path.join(tmp, 'k2'))})
spawner = LocalProcessSpawner(config=c)
for _ in range(3):
    asyncio.run(spawner.pre_spawn_hook(spawner))
emit(spawner.environment)`,
      // PYTHONPATH reaches the server from the hub's own environment (it is in env_keep).
      { PYTHONPATH: '/hub/site' },
    ) as Record<string, string>;
    assert.equal(env.PYTHONPATH, '/opt/agent:/hub/site');
    assert.equal(env.JUPYTER_PATH, `${path.join(tmp, 'k2')}:/site/jupyter`);
    assert.equal(env.JUPYTERHUB_RESUME_URL, 'http://svc:8080/services/resume/');
  });

  it('runs a pre_spawn_hook configured before it, sync or async', () => {
    const calls = runPython(`
calls = []
def sync_hook(spawner):
    calls.append("sync")
async def async_hook(spawner):
    calls.append("async")
for hook in (sync_hook, async_hook):
    c = Config()
    c.Spawner.pre_spawn_hook = hook
    install_resume_hooks(c, service_url="http://svc/", agent_path="/a", kernelspec_dir=${JSON.stringify(path.join(tmp, 'k3'))}, write_kernelspec_now=False)
    spawner = LocalProcessSpawner(config=c)
    asyncio.run(spawner.pre_spawn_hook(spawner))
    calls.append(spawner.environment["JUPYTERHUB_RESUME_URL"])
emit(calls)`) as string[];
    assert.deepEqual(calls, ['sync', 'http://svc/', 'async', 'http://svc/']);
  });
});

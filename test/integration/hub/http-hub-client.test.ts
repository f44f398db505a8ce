import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { isResumeError, type ResumeError } from '../../../src/errors.js';
import type { HubClient } from '../../../src/hub/hub-client.js';
import { HttpHubClient } from '../../../src/hub/http-hub-client.js';
import { type HubProcess, type StartedHub, startHub } from '../../fixtures/hub.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace'];
const SPAWN = { timeoutMs: 60_000, pollIntervalMs: 100 };

/** A debug logger whose lines we can read back (plain pino, no redaction: the client must not need it). */
function capturingLogger() {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

/** Asserts that `promise` rejects with a ResumeError of this code, and returns the error. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ResumeError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(isResumeError(e), `expected a ResumeError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** Polls until `find` returns something, or fails after `timeoutMs`. */
async function eventually<T>(what: string, find: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** The single-user server process of user/server, from /proc. */
async function serverProcess(hub: StartedHub, user: string, server: string): Promise<HubProcess> {
  return eventually(`the process of ${user}/${server}`, async () =>
    (await hub.processes()).find(
      (p) =>
        p.argv.some((a) => a.endsWith('jupyterhub-singleuser')) &&
        p.env.JUPYTERHUB_USER === user &&
        p.env.JUPYTERHUB_SERVER_NAME === server,
    ),
  );
}

describe('HttpHubClient against a real JupyterHub', { timeout: 240_000 }, () => {
  let hub: StartedHub;
  let service: HubClient;
  let admin: HubClient;
  const log = capturingLogger();

  before(
    async () => {
      // 7 users + 1 admin with pages of 3: the listing takes three pages.
      hub = await startHub({ users: USERS, adminUsers: ['admin'], pageSize: 3, allowNamedServers: true });
      service = new HttpHubClient({ apiUrl: hub.apiUrl, token: hub.service.token, logger: log.logger });
      admin = new HttpHubClient({ apiUrl: hub.apiUrl, token: hub.adminToken });
    },
    { timeout: 90_000 },
  );

  after(async () => {
    await hub?.stop();
  });

  it('reports the version of the installed JupyterHub', async () => {
    const installed = execFileSync(path.join(REPO, '.venv', 'bin', 'python'), ['-c', 'import jupyterhub; print(jupyterhub.__version__)'], {
      encoding: 'utf8',
    }).trim();
    assert.equal(await service.version(), installed);
  });

  it('lists every user across pages, following the hub pagination', async () => {
    const before = log.lines.length;
    const names: string[] = [];
    for await (const user of service.listUsers()) names.push(user.name);
    assert.deepEqual([...names].sort(), [...USERS, 'admin'].sort());
    const pageRequests = log.lines
      .slice(before)
      .map((l) => JSON.parse(l) as { msg: string; path?: string; status?: number })
      .filter((l) => l.msg === 'hub request' && l.path === '/users');
    assert.equal(pageRequests.length, 3, 'eight users in pages of three are three requests');
    assert.ok(pageRequests.every((r) => r.status === 200));
  });

  it('honours an explicit page size', async () => {
    const before = log.lines.length;
    const names: string[] = [];
    for await (const user of service.listUsers({ pageSize: 5 })) names.push(user.name);
    assert.equal(names.length, 8);
    const pages = log.lines.slice(before).filter((l) => l.includes('"path":"/users"'));
    assert.equal(pages.length, 2);
  });

  it('accepts the bare user list that hubs answer without the pagination header', async () => {
    // A real HTTP hop that drops the Accept header, as an old hub or a careless gateway would:
    // the real hub then answers with a bare JSON list.
    const hubOrigin = new URL(hub.apiUrl).origin;
    const front: Server = createServer((req, res) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (k !== 'accept' && k !== 'host' && typeof v === 'string') headers[k] = v;
      }
      fetch(hubOrigin + (req.url ?? '/'), { method: req.method, headers })
        .then(async (r) => {
          res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' });
          res.end(Buffer.from(await r.arrayBuffer()));
        })
        .catch(() => res.destroy());
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    try {
      const address = front.address();
      assert.ok(address !== null && typeof address === 'object');
      const viaFront = new HttpHubClient({ apiUrl: `http://127.0.0.1:${address.port}/hub/api`, token: hub.service.token });
      const raw = await fetch(`http://127.0.0.1:${address.port}/hub/api/users`, {
        headers: { Authorization: `token ${hub.service.token}`, Accept: 'application/jupyterhub-pagination+json' },
      });
      assert.ok(Array.isArray(await raw.json()), 'the hop really yields the bare list shape');
      const names: string[] = [];
      for await (const user of viaFront.listUsers()) names.push(user.name);
      assert.deepEqual([...names].sort(), [...USERS, 'admin'].sort());
    } finally {
      await new Promise((resolve) => front.close(resolve));
    }
  });

  it('returns null for a user the hub does not have', async () => {
    assert.equal(await service.getUser('nobody-here'), null);
  });

  it('starts and stops a default server, and lists it as ready while it runs', async () => {
    const started = await admin.startServer('alice');
    assert.ok(started === 'started' || started === 'pending');
    const ready = await service.waitForServerReady('alice', '', SPAWN);
    assert.equal(ready.user, 'alice');
    assert.equal(ready.name, '');
    assert.equal(ready.url, '/user/alice/');
    assert.equal(ready.pending, null);
    assert.ok(ready.started instanceof Date && !Number.isNaN(ready.started.getTime()));

    const alice = await service.getUser('alice');
    assert.ok(alice !== null);
    assert.equal(alice.admin, false);
    assert.deepEqual(
      alice.servers.map((s) => [s.name, s.ready]),
      [['', true]],
    );
    const readyUsers: string[] = [];
    for await (const user of service.listUsers({ state: 'ready' })) readyUsers.push(user.name);
    assert.deepEqual(readyUsers, ['alice']);
    const inactive: string[] = [];
    for await (const user of service.listUsers({ state: 'inactive' })) inactive.push(user.name);
    assert.ok(!inactive.includes('alice') && inactive.includes('bob'));

    const again = await rejectsWith(admin.startServer('alice'), 'RESUME_ERR_HUB_SERVER_ALREADY_RUNNING');
    assert.equal(again.status, 409);
    assert.match(again.message, /already running/);

    const stopped = await service.stopServer('alice');
    assert.ok(stopped === 'stopped' || stopped === 'pending');
    await service.waitForServerStopped('alice', '', SPAWN);
    assert.deepEqual((await service.getUser('alice'))?.servers, []);
    // Stopping what is not running is not an error: the culler may race the user's own stop.
    assert.equal(await service.stopServer('alice'), 'stopped');
  });

  it('starts and stops a named server whose name needs URL-encoding, and knows its own token', async () => {
    const name = 'exp 1';
    await admin.startServer('alice', name);
    const ready = await service.waitForServerReady('alice', name, SPAWN);
    assert.equal(ready.name, name);
    assert.equal(ready.url, '/user/alice/exp%201/');

    // The server's own token, read from its process environment.
    const proc = await serverProcess(hub, 'alice', name);
    const serverToken = proc.env.JUPYTERHUB_API_TOKEN;
    assert.ok(serverToken);
    const owner = await service.whoami(serverToken);
    assert.equal(owner.kind, 'user');
    assert.equal(owner.name, 'alice');
    assert.equal(owner.server, name);
    assert.ok(owner.scopes.includes('access:servers!server=alice/exp 1'), owner.scopes.join(' '));

    assert.ok((await service.stopServer('alice', name)) !== undefined);
    await service.waitForServerStopped('alice', name, SPAWN);
    assert.ok(!(await service.getUser('alice'))?.servers.some((s) => s.name === name));
  });

  it('reports a hub refusal with the hub message, e.g. the service may not start servers', async () => {
    const e = await rejectsWith(service.startServer('carol'), 'RESUME_ERR_HUB_REQUEST_FAILED');
    assert.equal(e.context.hubStatus, 403);
    assert.match(e.message, /servers/);
    assert.match(e.hint ?? '', /scope/);
    const missing = await rejectsWith(service.stopServer('alice', 'no-such-server'), 'RESUME_ERR_HUB_REQUEST_FAILED');
    assert.equal(missing.context.hubStatus, 404);
  });

  it('identifies the service token with exactly the scopes hub-config grants', async () => {
    const owner = await service.whoami(hub.service.token);
    assert.equal(owner.kind, 'service');
    assert.equal(owner.name, 'resume');
    assert.equal(owner.admin, false);
    assert.equal(owner.server, null);
    assert.deepEqual(
      [...owner.scopes].sort(),
      ['access:servers', 'delete:servers', 'list:users', 'read:servers', 'read:users:name'].sort(),
    );
  });

  it("identifies a user's API token as the user's, not a server's", async () => {
    const token = await hub.tokenFor('carol');
    const owner = await service.whoami(token);
    assert.equal(owner.kind, 'user');
    assert.equal(owner.name, 'carol');
    assert.equal(owner.server, null);
    // The user role hub-config sets lets users call the service with their own tokens.
    assert.ok(owner.scopes.includes('access:services!service=resume'), owner.scopes.join(' '));
  });

  it('rejects a token the hub does not know', async () => {
    const e = await rejectsWith(service.whoami('0123456789abcdef0123456789abcdef'), 'RESUME_ERR_AUTH_INVALID_TOKEN');
    assert.equal(e.status, 401);
    // Not even sent: a header cannot carry it.
    await rejectsWith(service.whoami(`${hub.service.token}\r\nX-Injected: 1`), 'RESUME_ERR_AUTH_INVALID_TOKEN');
    await rejectsWith(service.whoami(''), 'RESUME_ERR_AUTH_INVALID_TOKEN');
  });

  it('starts kernels with the agent kernelspec and the resume environment set by the spawn hook', async () => {
    await admin.startServer('bob');
    const server = await service.waitForServerReady('bob', '', SPAWN);
    const base = new URL(server.url.slice(1), hub.publicUrl).href;
    const auth = { Authorization: `token ${hub.adminToken}` };

    // The server serves our python3 kernelspec, not the venv's stock one.
    const specs = (await (await fetch(`${base}api/kernelspecs`, { headers: auth })).json()) as {
      kernelspecs: Record<string, { spec: { argv: string[] } }>;
    };
    assert.deepEqual(specs.kernelspecs.python3?.spec.argv, [
      'python',
      '-m',
      'ipykernel_launcher',
      '-f',
      '{connection_file}',
      '--ext=jupyterhub_resume_agent',
    ]);

    const created = await fetch(`${base}api/kernels`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'python3' }),
    });
    assert.equal(created.status, 201);
    const kernel = (await created.json()) as { id: string };
    const proc = await eventually('the kernel process', async () =>
      (await hub.processes()).find((p) => p.argv.some((a) => a.endsWith(`kernel-${kernel.id}.json`))),
    );

    // `python` was replaced by the server's own interpreter (the venv's).
    assert.equal(realpathSync(proc.argv[0] ?? ''), realpathSync(path.join(REPO, '.venv', 'bin', 'python')));
    assert.deepEqual(proc.argv.slice(1, 3), ['-m', 'ipykernel_launcher']);
    assert.ok(proc.argv.includes('--ext=jupyterhub_resume_agent'));
    assert.equal(proc.env.JUPYTERHUB_RESUME_URL, `${hub.service.url}/services/resume/`);
    assert.equal(proc.env.PYTHONPATH?.split(':')[0], path.join(REPO, 'src', 'agent', 'python'));
    const kernelspecDir = path.join(hub.dataDir, 'share', 'jupyter');
    assert.equal(proc.env.JUPYTER_PATH?.split(':')[0], kernelspecDir);
    const written = JSON.parse(readFileSync(path.join(kernelspecDir, 'kernels', 'python3', 'kernel.json'), 'utf8')) as { argv: string[] };
    assert.ok(written.argv.includes('--ext=jupyterhub_resume_agent'));

    // The kernel inherits the server's own hub token: the agent identifies itself with it.
    const token = proc.env.JUPYTERHUB_API_TOKEN;
    assert.ok(token);
    const owner = await service.whoami(token);
    assert.deepEqual([owner.kind, owner.name, owner.server], ['user', 'bob', '']);
    assert.ok(owner.scopes.includes('access:servers!server=bob/'), owner.scopes.join(' '));

    const e = await rejectsWith(service.waitForServerStopped('bob', '', { timeoutMs: 300, pollIntervalMs: 50 }), 'RESUME_ERR_HUB_WAIT_TIMEOUT');
    assert.equal(e.status, 504);
  });

  it('never puts a token in a URL or a log line', () => {
    const logged = log.lines.join('');
    assert.ok(log.lines.length > 0);
    assert.ok(!logged.includes(hub.service.token), 'our own log has no token');
    // The hub logs every request URL: a token in a query string would show up there.
    assert.ok(!hub.logs().includes(hub.service.token), "the hub's log has no token");
  });

  it('fails with RESUME_ERR_HUB_UNREACHABLE when nothing listens at the API URL', async () => {
    const nowhere = new HttpHubClient({ apiUrl: `http://127.0.0.1:${await closedPort()}/hub/api`, token: 'x'.repeat(32) });
    const e = await rejectsWith(nowhere.version(), 'RESUME_ERR_HUB_UNREACHABLE');
    assert.equal(e.status, 503);
    assert.ok(!e.message.includes('x'.repeat(32)));
  });
});

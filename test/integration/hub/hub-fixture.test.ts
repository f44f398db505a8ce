import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { type HubProcess, type StartedHub, startHub } from '../../fixtures/hub.js';
import { waitFor } from '../../fixtures/wait-for.js';

/** Starts `user`'s default server and one kernel in it, with the hub's admin token. */
async function startServerWithKernel(hub: StartedHub, user: string): Promise<void> {
  const auth = { Authorization: `token ${hub.adminToken}` };
  const start = await fetch(`${hub.apiUrl}/users/${user}/server`, { method: 'POST', headers: auth });
  assert.ok(start.status === 201 || start.status === 202, `start: ${start.status}`);
  await waitFor('the server to be ready', async () => {
    const model = (await (await fetch(`${hub.apiUrl}/users/${user}`, { headers: auth })).json()) as {
      servers?: Record<string, { ready: boolean }>;
    };
    return model.servers?.['']?.ready === true;
  }, 60_000);
  const kernel = await fetch(`${hub.publicUrl}user/${user}/api/kernels`, {
    method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'python3' }),
  });
  assert.equal(kernel.status, 201);
  await waitFor('the kernel process', async () => (await hub.processes()).some(isKernel), 60_000);
}

const isHub = (p: HubProcess) => p.argv.some((a) => a.endsWith('/jupyterhub')) && p.argv.includes('-f');
const isProxy = (p: HubProcess) => p.argv.some((a) => a.includes('configurable-http-proxy'));
const isServer = (p: HubProcess) => p.argv.some((a) => a.endsWith('jupyterhub-singleuser'));
const isKernel = (p: HubProcess) => p.argv.includes('ipykernel_launcher');

describe('startHub', { timeout: 180_000 }, () => {
  const started: StartedHub[] = [];
  after(async () => {
    for (const hub of started) await hub.stop();
  });

  it('stop() ends the hub, its proxy, servers and kernels, and removes its files', async () => {
    const hub = await startHub({ users: ['alice'] });
    started.push(hub);
    await startServerWithKernel(hub, 'alice');
    const running = await hub.processes();
    for (const [kind, is] of Object.entries({ hub: isHub, proxy: isProxy, server: isServer, kernel: isKernel })) {
      assert.ok(running.some(is), `a ${kind} process is running: ${running.map((p) => p.argv.join(' ')).join(' | ')}`);
    }
    // The service tokens were read by the config and dropped: the proxy never sees them.
    const proxy = running.find(isProxy);
    assert.equal(proxy?.env.RESUME_SERVICE_API_TOKEN, undefined);
    assert.equal(proxy?.env.RESUME_TEST_ADMIN_TOKEN, undefined);

    await hub.stop();
    assert.deepEqual(await hub.processes(), []);
    assert.ok(!existsSync(hub.dataDir), 'the temp dir is gone');
    assert.match(hub.logs(), /Hub API listening/, 'the log outlives the temp dir');
    await hub.stop(); // idempotent
  });

  it('stop() also ends the servers and kernels of a hub that was killed', async () => {
    const hub = await startHub({ users: ['bob'] });
    started.push(hub);
    await startServerWithKernel(hub, 'bob');
    const hubProcess = (await hub.processes()).find(isHub);
    assert.ok(hubProcess);
    // A crashed hub cannot clean up: its server and kernel live on in sessions of their own.
    process.kill(hubProcess.pid, 'SIGKILL');
    await waitFor('the hub to be gone', async () => !(await hub.processes()).some(isHub), 60_000);
    assert.ok((await hub.processes()).some(isKernel), 'the orphaned kernel is still running');

    await hub.stop();
    assert.deepEqual(await hub.processes(), []);
  });

  it('logs users in with the hub login form', async () => {
    const hub = await startHub({ users: ['carol'], password: 'a-shared-secret' });
    started.push(hub);
    const cookie = await hub.login('carol');
    const home = await fetch(`${hub.publicUrl}hub/home`, { headers: { Cookie: cookie }, redirect: 'manual' });
    assert.equal(home.status, 200);
    const anonymous = await fetch(`${hub.publicUrl}hub/home`, { redirect: 'manual' });
    assert.equal(anonymous.status, 302, 'without the cookie the hub asks to log in');
    await hub.stop();
  });

  it('fails with the end of the hub log when the hub cannot start, and leaves nothing behind', async () => {
    let message = '';
    await assert.rejects(
      startHub({ env: { RESUME_HUB_PAGE_DEFAULT_LIMIT: 'lots' } }).catch((e: Error) => {
        message = e.message;
        throw e;
      }),
    );
    assert.match(message, /JupyterHub exited/);
    assert.match(message, /RESUME_HUB_PAGE_DEFAULT_LIMIT must be an integer, not 'lots'/);
    const tmp = /its temp dir (\S+) is removed/.exec(message)?.[1];
    assert.ok(tmp !== undefined && tmp.includes('jhr-hub-'), message);
    assert.ok(!existsSync(tmp));
  });
});

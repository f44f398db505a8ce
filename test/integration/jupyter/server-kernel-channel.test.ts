import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { JupyterServerClient } from '../../../src/jupyter/jupyter-server-client.js';
import { ServerKernelChannel } from '../../../src/jupyter/server-kernel-channel.js';
import { startJupyterServer, type JupyterServerFixture } from '../../fixtures/kernel.js';
import { waitFor } from '../../fixtures/wait-for.js';

describe('JupyterServerClient and ServerKernelChannel against a jupyter server', () => {
  let server: JupyterServerFixture;
  let client: JupyterServerClient;
  const channels: ServerKernelChannel[] = [];

  before(async () => {
    server = await startJupyterServer();
    client = new JupyterServerClient({ baseUrl: server.baseUrl, token: server.token });
  });

  after(async () => {
    for (const c of channels) await c.dispose();
    await server?.stop();
  });

  it('never moves the server\'s last_activity with its own requests, while a plain API call does', async () => {
    const before = await client.status();
    await client.listKernels();
    await client.listSessions();
    await client.getKernel('00000000-0000-0000-0000-000000000000');
    assert.equal((await client.status()).last_activity, before.last_activity);

    const plain = await fetch(`${server.baseUrl}api/kernels`, { headers: { Authorization: `token ${server.token}` } });
    assert.equal(plain.status, 200);
    await plain.body?.cancel();
    const moved = await client.status();
    assert.ok(
      Date.parse(moved.last_activity) > Date.parse(before.last_activity),
      `a tracked call moves last_activity (${before.last_activity} → ${moved.last_activity})`,
    );
  });

  it('starts a kernel over REST and lists it with its state', async () => {
    const started = await client.startKernel('python3');
    assert.equal(started.name, 'python3');
    const listed = (await client.listKernels()).find((m) => m.id === started.id);
    assert.ok(listed, 'the new kernel is listed');
    // A kernel nobody has talked to yet stays "starting" until its first status message.
    assert.ok(['starting', 'idle'].includes(listed.execution_state), listed.execution_state);
    assert.equal(listed.connections, 0);
    assert.ok(!Number.isNaN(Date.parse(listed.last_activity)));
    assert.deepEqual(await client.getKernel(started.id).then((k) => k?.id), started.id);
  });

  it('lists sessions with the notebook path each kernel serves', async () => {
    const created = await fetch(`${server.baseUrl}api/sessions`, {
      method: 'POST',
      headers: { Authorization: `token ${server.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ path: 'work/analysis.ipynb', type: 'notebook', kernel: { name: 'python3' } }),
    });
    assert.equal(created.status, 201);
    const body = (await created.json()) as { kernel: { id: string } };
    const sessions = await client.listSessions();
    const session = sessions.find((s) => s.kernel?.id === body.kernel.id);
    assert.equal(session?.path, 'work/analysis.ipynb');
  });

  it('executes code over the kernel websocket, authenticated by the token in the upgrade header', async () => {
    const [kernel] = await client.listKernels();
    assert.ok(kernel);
    const channel = await ServerKernelChannel.connect({ baseUrl: server.baseUrl, token: server.token, kernelId: kernel.id });
    channels.push(channel);
    const result = await channel.execute('shared = [1, 2, 3]\nprint("sum", sum(shared))\nlen(shared)');
    assert.equal(result.status, 'ok');
    assert.deepEqual(result.outputs[0], { type: 'stream', name: 'stdout', text: 'sum 6\n' });
    const value = result.outputs[1];
    assert.ok(value?.type === 'execute_result');
    assert.equal(value.data['text/plain'], '3');

    const silent = await channel.execute('', { silent: true, userExpressions: { s: 'shared[-1]' } });
    assert.equal(silent.executionCount, result.executionCount, 'silent requests keep the counter');
    assert.deepEqual(silent.userExpressions['s'], { status: 'ok', data: { 'text/plain': '3' }, metadata: {} });
    assert.equal((await client.getKernel(kernel.id))?.connections, 1);
  });

  it('refuses a wrong token on REST and on connect, and a websocket upgrade without the header', async () => {
    const wrong = new JupyterServerClient({ baseUrl: server.baseUrl, token: 'not-the-token' });
    await assert.rejects(wrong.listKernels(), { code: 'RESUME_ERR_JUPYTER_FORBIDDEN' });
    const [kernel] = await client.listKernels();
    assert.ok(kernel);
    await assert.rejects(
      ServerKernelChannel.connect({ baseUrl: server.baseUrl, token: 'not-the-token', kernelId: kernel.id }),
      { code: 'RESUME_ERR_JUPYTER_FORBIDDEN' },
    );
    // The server does check websocket upgrades: without the header there is no channel.
    const { default: WebSocket } = await import('ws');
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${server.baseUrl.replace('http', 'ws')}api/kernels/${kernel.id}/channels`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
    });
    assert.equal(status, 403);
  });

  it('reports a kernel the server does not have', async () => {
    await assert.rejects(
      ServerKernelChannel.connect({ baseUrl: server.baseUrl, token: server.token, kernelId: 'no-such-kernel' }),
      { code: 'RESUME_ERR_JUPYTER_KERNEL_NOT_FOUND' },
    );
  });

  it('interrupts a running cell through the server', async () => {
    const channel = channels[0];
    assert.ok(channel);
    const marker = join(server.rootDir, 'interrupt-started');
    const running = channel.execute(
      `import pathlib, time\npathlib.Path(${JSON.stringify(marker)}).touch()\ntime.sleep(60)`,
      { timeoutMs: 30_000 },
    );
    await waitFor('the cell to start', () => existsSync(marker), 15_000, 25);
    await channel.interrupt();
    const result = await running;
    assert.equal(result.status, 'error');
    assert.equal(result.error?.ename, 'KeyboardInterrupt');
  });

  it('fails a pending request at once when the kernel is shut down', async () => {
    const kernel = await client.startKernel('python3');
    const channel = await ServerKernelChannel.connect({ baseUrl: server.baseUrl, token: server.token, kernelId: kernel.id });
    channels.push(channel);
    const marker = join(server.rootDir, 'shutdown-started');
    const started = Date.now();
    const pending = channel.execute(`import pathlib, time\npathlib.Path(${JSON.stringify(marker)}).touch()\ntime.sleep(60)`, {
      timeoutMs: 50_000,
    });
    await waitFor('the cell to start', () => existsSync(marker), 15_000, 25);
    await client.shutdownKernel(kernel.id);
    await assert.rejects(pending, { code: 'RESUME_ERR_KERNEL_DEAD' });
    assert.ok(Date.now() - started < 20_000, 'noticed by watching the server, not by the 50 s deadline');
    assert.equal(await client.getKernel(kernel.id), null);
  });
});

/**
 * Durable checkpoints, for real (JupyterHub, single-user servers, kernels with the agent, the
 * service, Postgres): background checkpoints after a kernel goes idle, a cull that then uploads only
 * what changed, checkpoints on demand and from the server's own preStop hook, a per-user quota, and
 * the recovery of a kernel that died with no checkpoint of its last cells.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningService } from '../../src/app.js';
import { HttpHubClient } from '../../src/hub/http-hub-client.js';
import { JupyterServerClient } from '../../src/jupyter/jupyter-server-client.js';
import { freePort } from '../fixtures/free-ports.js';
import { startHub, type StartedHub } from '../fixtures/hub.js';
import { openNotebook, stdoutOf, type OpenNotebook } from '../fixtures/notebook-user.js';
import { startPostgres, type StartedPostgres } from '../fixtures/postgres.js';
import { startResumeService, TravellingClock } from '../fixtures/resume-service.js';
import { waitFor } from '../fixtures/wait-for.js';

const MiB = 1024 * 1024;

type CheckpointView = {
  id: string;
  notebook_path: string;
  state: string;
  trigger: string;
  restore_state: string;
  bytes_stored: number;
  bytes_reused: number;
  error: string | null;
};

describe('durable checkpoints, end to end', () => {
  let postgres: StartedPostgres;
  let hub: StartedHub;
  let service: RunningService;
  let admin: HttpHubClient;
  let aliceToken: string;
  let bobToken: string;
  const clock = new TravellingClock();

  const api = (token: string, path: string, init: RequestInit = {}) =>
    fetch(`${service.url}${path}`, { ...init, headers: { Authorization: `token ${token}`, ...init.headers } });

  before(async () => {
    postgres = await startPostgres();
    const port = await freePort();
    hub = await startHub({ service: { url: `http://127.0.0.1:${port}`, name: 'resume' } });
    service = await startResumeService({
      port,
      hub,
      databaseUrl: postgres.url,
      clock,
      // Every variable stored: the bytes each checkpoint uploads are what this test is about.
      env: { RESUME_PLAN: 'store-all', RESUME_BACKGROUND_IDLE: '180', RESUME_USER_QUOTA_MB: '300' },
    });
    admin = new HttpHubClient({ apiUrl: hub.apiUrl, token: hub.adminToken });
    aliceToken = await hub.tokenFor('alice');
    bobToken = await hub.tokenFor('bob');
  });

  after(async () => {
    await service?.stop();
    await hub?.stop();
    await postgres?.stop();
  });

  async function startServer(user: string): Promise<void> {
    if ((await admin.startServer(user)) === 'pending') await admin.waitForServerReady(user, '', { timeoutMs: 60_000 });
  }

  const open = (user: string, token: string, path: string) => openNotebook({ publicUrl: hub.publicUrl, user, token, path });

  async function checkpointsOf(token: string, notebook: string): Promise<CheckpointView[]> {
    const body = (await (await api(token, 'api/checkpoints')).json()) as { checkpoints: CheckpointView[] };
    return body.checkpoints.filter((c) => c.notebook_path.endsWith(notebook));
  }

  async function sessionIdOf(token: string, notebook: string): Promise<string> {
    const body = (await (await api(token, 'api/sessions')).json()) as { sessions: Array<{ id: string; notebook_path: string }> };
    const found = body.sessions.find((s) => s.notebook_path.endsWith(notebook));
    assert.ok(found, `a session for ${notebook}`);
    return found.id;
  }

  /** Waits until the service has the records of `cells` cells of the notebook (they are posted in the background). */
  async function recorded(token: string, notebook: string, cells: number): Promise<void> {
    const id = await sessionIdOf(token, notebook);
    await waitFor(`${cells} cells of ${notebook} recorded`, async () => {
      const body = (await (await api(token, `api/sessions/${id}/graph`)).json()) as { graph: { cellExecutions: unknown[] } };
      return body.graph.cellExecutions.length >= cells;
    });
  }

  it('checkpoints an idle kernel in the background, and the cull then uploads only the small change', async () => {
    await startServer('alice');
    const notebook = await open('alice', aliceToken, 'big.ipynb');
    await notebook.run('import numpy as np\nbig = np.arange(256 * 1024 * 1024 // 8, dtype=np.float64)  # 256 MiB');
    await notebook.run('small = 1');
    await recorded(aliceToken, 'big.ipynb', 2);

    clock.travel(600); // idle for ten minutes
    const round = await service.background!.round();
    assert.deepEqual(round.map((o) => o.status), ['complete']);
    const [background] = await checkpointsOf(aliceToken, 'big.ipynb');
    assert.equal(background?.trigger, 'periodic');
    assert.equal(background?.restore_state, 'none', 'a background checkpoint is no reason to restore at the next restart');
    assert.ok((background?.bytes_stored ?? 0) > 256 * MiB, `the first checkpoint uploads the array: ${background?.bytes_stored}`);
    assert.deepEqual(await service.background!.round(), [], 'nothing ran since: nothing to save');

    await notebook.run('small = 2');
    await notebook.close();
    await recorded(aliceToken, 'big.ipynb', 3);
    clock.travel(2 * 3600);
    assert.equal((await service.culler!.sweep()).get('alice/'), 'culled');
    await admin.waitForServerStopped('alice', '', { timeoutMs: 60_000 });

    const [cull] = await checkpointsOf(aliceToken, 'big.ipynb');
    assert.equal(cull?.trigger, 'cull');
    assert.equal(cull?.restore_state, 'pending');
    assert.ok((cull?.bytes_stored ?? Infinity) < MiB, `the cull uploads only what changed: ${cull?.bytes_stored} bytes`);
    assert.ok((cull?.bytes_reused ?? 0) > 256 * MiB, 'and reuses the array the background checkpoint stored');

    await startServer('alice');
    const reopened = await open('alice', aliceToken, 'big.ipynb');
    const probe = await reopened.run('print(float(big.sum()), small)');
    await reopened.close();
    const n = (256 * MiB) / 8;
    assert.match(stdoutOf(probe), new RegExp(`${(n * (n - 1)) / 2}\\.0 2\\s*$`));
  });

  it('checkpoints on demand for the owner only, and refuses while a cell runs', async () => {
    const notebook = await open('alice', aliceToken, 'demand.ipynb');
    await notebook.run('answer = 42');
    const sessionId = await sessionIdOf(aliceToken, 'demand.ipynb');

    const taken = await api(aliceToken, `api/sessions/${sessionId}/checkpoint`, { method: 'POST' });
    assert.equal(taken.status, 201, await taken.clone().text());
    const body = (await taken.json()) as { id: string; trigger: string; state: string };
    assert.deepEqual([body.trigger, body.state], ['manual', 'complete']);

    const others = await api(bobToken, `api/sessions/${sessionId}/checkpoint`, { method: 'POST' });
    assert.equal(others.status, 404, 'another user’s session does not exist for bob');

    const running = notebook.channel.execute('import time\ntime.sleep(300)', { timeoutMs: 600_000 });
    const server = new JupyterServerClient({ baseUrl: `${hub.publicUrl}user/alice/`, token: hub.adminToken });
    await waitFor('the kernel to be busy', async () =>
      (await server.listKernels()).some((k) => k.id === notebook.kernelId && k.execution_state === 'busy'),
    );
    const busy = await api(aliceToken, `api/sessions/${sessionId}/checkpoint`, { method: 'POST' });
    assert.equal(busy.status, 409);
    assert.equal(((await busy.json()) as { code: string }).code, 'RESUME_ERR_KERNEL_BUSY');
    await notebook.channel.interrupt!();
    assert.equal((await running).status, 'error');
    await notebook.close();
  });

  it('checkpoints every idle kernel when the server’s own preStop hook asks, for its next start to restore', async () => {
    const saved = await open('alice', aliceToken, 'prestop.ipynb');
    await saved.run('kept = "through the pod’s end"');
    await saved.close();
    const hook = await open('alice', aliceToken, 'hook.ipynb');
    // What a Kubernetes preStop hook runs, from inside the server, with the server's own token.
    const result = await hook.run(
      'import subprocess, sys\n' +
        "r = subprocess.run([sys.executable, '-m', 'jupyterhub_resume_agent.prestop'], capture_output=True, text=True)\n" +
        'print(r.returncode)\nprint(r.stdout)\nprint(r.stderr)',
    );
    await hook.close();
    const output = stdoutOf(result);
    // The hook's own kernel is running it, so it is busy and left alone: exit status 1.
    assert.match(output, /^1$/m, output);
    assert.match(output, new RegExp(`kernel ${hook.kernelId}: busy`));
    assert.match(output, new RegExp(`kernel ${saved.kernelId}: complete`));
    const [prestop] = await checkpointsOf(aliceToken, 'prestop.ipynb');
    assert.equal(prestop?.trigger, 'prestop');
    assert.equal(prestop?.restore_state, 'pending');
  });

  it('recovers the state of a kernel that was killed: from its history alone, then from a checkpoint plus later cells', async () => {
    const notebook = await open('alice', aliceToken, 'crash.ipynb');
    await notebook.run('x = 41');
    await notebook.run('y = x + 1');
    const pid = Number(stdoutOf(await notebook.run('import os\nprint(os.getpid())')).trim());
    await recorded(aliceToken, 'crash.ipynb', 3);
    await notebook.close();

    const afterKill = await killAndReopen(pid, 'crash.ipynb');
    const first = await afterKill.run('print(x, y)');
    assert.match(stdoutOf(first), /stopped without saving\. No checkpoint held its state, so it was rebuilt by re-running/);
    assert.match(stdoutOf(first), /^41 42$/m);

    // Now with a background checkpoint, and a cell after it.
    await recorded(aliceToken, 'crash.ipynb', 4);
    clock.travel(600);
    const round = await service.background!.round();
    assert.ok(round.some((o) => o.status === 'complete' && o.kernelId === afterKill.kernelId));
    await afterKill.run('z = y * 2');
    const pid2 = Number(stdoutOf(await afterKill.run('print(os.getpid())')).trim());
    await recorded(aliceToken, 'crash.ipynb', 6);
    await afterKill.close();

    const again = await killAndReopen(pid2, 'crash.ipynb');
    const second = await again.run('print(x, y, z)');
    assert.match(stdoutOf(second), /Its state came back from checkpoint [0-9a-f-]+ plus \d+ cells re-run/);
    assert.match(stdoutOf(second), /^41 42 84$/m);

    // A restart the user asks for is not a death: the kernel starts empty.
    const server = new JupyterServerClient({ baseUrl: `${hub.publicUrl}user/alice/`, token: aliceToken });
    await again.close();
    await server.restartKernel(again.kernelId);
    const restarted = await open('alice', aliceToken, 'crash.ipynb');
    const empty = await restarted.run("print('x' in globals())");
    await restarted.close();
    assert.match(stdoutOf(empty), /^False$/m);
    assert.doesNotMatch(stdoutOf(empty), /stopped without saving/);
  });

  it('refuses a checkpoint over the user’s quota with a clear error, and keeps the previous one', async () => {
    await startServer('bob');
    const notebook = await open('bob', bobToken, 'huge.ipynb');
    await notebook.run('import numpy as np\nsmall = 1');
    const sessionId = await sessionIdOf(bobToken, 'huge.ipynb');
    const first = await api(bobToken, `api/sessions/${sessionId}/checkpoint`, { method: 'POST' });
    assert.equal(first.status, 201);
    const kept = ((await first.json()) as { id: string }).id;

    await notebook.run('huge = np.ones(400 * 1024 * 1024 // 8)  # 400 MiB, over the 300 MB quota');
    const refused = await api(bobToken, `api/sessions/${sessionId}/checkpoint`, { method: 'POST' });
    await notebook.close();
    assert.equal(refused.status, 507);
    const error = (await refused.json()) as { code: string; message: string; hint: string };
    assert.equal(error.code, 'RESUME_ERR_QUOTA_EXCEEDED');
    assert.match(error.message, /over your quota of 300\.0 MB; your previous checkpoint is kept/);
    assert.match(error.hint, /Delete saved sessions/);

    const listed = await checkpointsOf(bobToken, 'huge.ipynb');
    assert.equal(listed.find((c) => c.state === 'complete')?.id, kept);
    assert.match(listed.find((c) => c.state === 'failed')?.error ?? '', /quota/);
    const usage = ((await (await api(bobToken, 'api/checkpoints')).json()) as { usage: { bytes: number; quota_bytes: number } }).usage;
    assert.equal(usage.quota_bytes, 300e6);
    assert.ok(usage.bytes < MiB, `only the small checkpoint counts: ${usage.bytes}`);

    // Saved sessions are deleted by their owner only.
    assert.equal((await api(aliceToken, `api/checkpoints/${kept}`, { method: 'DELETE' })).status, 404);
    assert.equal((await api(bobToken, `api/checkpoints/${kept}`, { method: 'DELETE' })).status, 204);
    assert.equal((await checkpointsOf(bobToken, 'huge.ipynb')).find((c) => c.id === kept), undefined);
  });

  /** Kills a kernel process as the OOM killer would; its server restarts it, and the notebook is opened again. */
  async function killAndReopen(pid: number, path: string): Promise<OpenNotebook> {
    process.kill(pid, 'SIGKILL');
    await waitFor('the kernel process to be gone', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    // jupyter_server's restarter starts a new process for the same kernel id; its agent recovers.
    return open('alice', aliceToken, path);
  }
});

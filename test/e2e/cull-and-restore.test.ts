/**
 * The whole path, for real: JupyterHub + proxy + single-user servers + kernels with the agent,
 * the resume service, and Postgres. A user runs cells, goes idle, the service checkpoints and
 * culls the server; the user starts it again and finds their variables.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { RunningService } from '../../src/app.js';
import { HttpHubClient } from '../../src/hub/http-hub-client.js';
import { JupyterServerClient } from '../../src/jupyter/jupyter-server-client.js';
import { startHub, type StartedHub } from '../fixtures/hub.js';
import { openNotebook, stdoutOf } from '../fixtures/notebook-user.js';
import { waitFor } from '../fixtures/wait-for.js';
import { startPostgres } from '../fixtures/postgres.js';
import { freePort } from '../fixtures/free-ports.js';
import { startResumeService, TravellingClock } from '../fixtures/resume-service.js';

type Pg = Awaited<ReturnType<typeof startPostgres>>;

const NOTEBOOK = 'analysis.ipynb';
const CELLS = [
  'import numpy as np\nimport pandas as pd',
  'n = 42\ns = "hello"\na = [1, 2, [3, 4]]\nb = a\nd = {"a": a, "n": n}',
  'arr = np.arange(100 * 1024 * 1024 // 8, dtype=np.float64)  # 100 MB',
  'df = pd.DataFrame({"x": range(1000), "y": [i * 0.5 for i in range(1000)]})',
  'def f(x):\n    return x * n\n\nclass Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n\np = Point(1, 2)\nsq = lambda v: v * v',
  'gen = (i * i for i in range(10))\nnext(gen)\nnext(gen)',
  'tmp = 1\ndel tmp',
];
const PROBE = `import json
print(json.dumps({
  "n": n, "s": s, "a": a, "alias": b is a, "dict_alias": d["a"] is a,
  "arr": [arr.shape[0], float(arr.sum())],
  "df": bool(df.equals(pd.DataFrame({"x": range(1000), "y": [i * 0.5 for i in range(1000)]}))),
  "f": f(2), "p": [p.x, p.y, type(p).__name__], "sq": sq(5), "gen_next": next(gen),
  "tmp_gone": "tmp" not in globals(), "np": np.__name__,
}))`;
const N = (100 * 1024 * 1024) / 8;

describe('cull and restore, end to end', () => {
  let postgres: Pg;
  let hub: StartedHub;
  let service: RunningService;
  let admin: HttpHubClient;
  let aliceToken: string;
  let bobToken: string;
  let firstCheckpointId: string;
  let sessionId: string;
  const clock = new TravellingClock();
  const servicePort = { value: 0 };

  const api = (token: string, path: string, init: RequestInit = {}) =>
    fetch(`${service.url}${path}`, { ...init, headers: { Authorization: `token ${token}`, ...init.headers } });

  before(async () => {
    postgres = await startPostgres();
    servicePort.value = await freePort();
    hub = await startHub({ service: { url: `http://127.0.0.1:${servicePort.value}`, name: 'resume' } });
    service = await startResumeService({
      port: servicePort.value,
      hub,
      databaseUrl: postgres.url,
      clock,
      // These tests are about storing and restoring every variable (plans: plan-and-restore.test.ts).
      env: { RESUME_PLAN: 'store-all' },
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
    if ((await admin.startServer(user)) === 'pending') {
      await admin.waitForServerReady(user, '', { timeoutMs: 60_000 });
    }
  }

  async function sweepAfterIdle(): Promise<string | undefined> {
    clock.travel(2 * 3600);
    const outcomes = await service.culler!.sweep();
    return outcomes.get('alice/');
  }

  it('checkpoints an idle server, culls it, and restores every variable at the next kernel start', async () => {
    await startServer('alice');
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token: aliceToken, path: NOTEBOOK });
    let lastCount = 0;
    for (const cell of CELLS) lastCount = (await notebook.run(cell)).executionCount ?? 0;
    assert.equal(lastCount, CELLS.length);
    await notebook.close();

    assert.equal(await sweepAfterIdle(), 'culled');
    await admin.waitForServerStopped('alice', '', { timeoutMs: 60_000 });

    const listed = (await (await api(aliceToken, 'api/checkpoints')).json()) as {
      checkpoints: Array<{ id: string; notebook_path: string; state: string; restore_state: string }>;
    };
    assert.equal(listed.checkpoints.length, 1);
    const [checkpoint] = listed.checkpoints;
    // jupyter_server names a kernel's notebook by its path on the server's disk.
    assert.match(checkpoint?.notebook_path ?? '', /(^|\/)analysis\.ipynb$/);
    assert.equal(checkpoint?.state, 'complete');
    assert.equal(checkpoint?.restore_state, 'pending');
    firstCheckpointId = checkpoint!.id;

    // A new server process on a new port: nothing of the old one survives but the checkpoint.
    await startServer('alice');
    const reopened = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token: aliceToken, path: NOTEBOOK });
    const probe = await reopened.run(PROBE);
    await reopened.close();

    assert.equal(probe.executionCount, CELLS.length + 1, 'the execution counter carries on');
    const text = stdoutOf(probe);
    assert.match(text, /restored/i, 'the first cell shows what was restored');
    const state = JSON.parse(text.trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.deepEqual(state, {
      n: 42,
      s: 'hello',
      a: [1, 2, [3, 4]],
      alias: true,
      dict_alias: true,
      arr: [N, (N * (N - 1)) / 2],
      df: true,
      f: 84,
      p: [1, 2, 'Point'],
      sq: 25,
      gen_next: 4,
      tmp_gone: true,
      np: 'numpy',
    });

    const detail = await waitFor('the restore report', async () => {
      const body = (await (await api(aliceToken, `api/checkpoints/${firstCheckpointId}`)).json()) as {
        restore_state: string;
        restore_report: { variables: Array<{ name: string; status: string }> } | null;
      };
      return body.restore_state === 'restored' ? body : null;
    });
    const statusOf = Object.fromEntries(detail.restore_report!.variables.map((v) => [v.name, v.status]));
    assert.equal(statusOf['arr'], 'stored');
    assert.equal(statusOf['np'], 'imported');
    assert.equal(statusOf['gen'], 'recomputed');

    // The session's history graph spans both kernels: the checkpoint's cells, then the probe.
    const sessions = (await (await api(aliceToken, 'api/sessions')).json()) as {
      sessions: Array<{ id: string; notebook_path: string }>;
    };
    const session = sessions.sessions.find((s) => s.notebook_path.endsWith(NOTEBOOK));
    assert.ok(session, 'the notebook is one of alice’s sessions');
    sessionId = session.id;
    const graph = await waitFor('the probe cell in the history graph', async () => {
      const body = (await (await api(aliceToken, `api/sessions/${session.id}/graph`)).json()) as {
        graph: { cellExecutions: Array<{ code: string }>; variableSnapshots: Array<{ names: string[] }> };
      };
      return body.graph.cellExecutions.length === CELLS.length + 1 ? body.graph : null;
    });
    assert.deepEqual(
      graph.cellExecutions.map((c) => c.code),
      [...CELLS, PROBE],
    );
    assert.ok(graph.variableSnapshots.some((v) => v.names.includes('arr')));
  });

  it('never culls a server whose kernel is busy', async () => {
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token: aliceToken, path: NOTEBOOK });
    const running = notebook.channel.execute('import time\ntime.sleep(300)', { timeoutMs: 600_000 });
    const server = new JupyterServerClient({ baseUrl: `${hub.publicUrl}user/alice/`, token: hub.adminToken });
    await waitFor('the kernel to be busy', async () =>
      (await server.listKernels()).some((k) => k.id === notebook.kernelId && k.execution_state === 'busy'),
    );

    assert.equal(await sweepAfterIdle(), 'kept-busy');
    assert.equal((await admin.getUser('alice'))?.servers[0]?.ready, true);

    await notebook.channel.interrupt!();
    assert.equal((await running).status, 'error');
    await notebook.close();
  });

  it('keeps the server and the last good checkpoint when Postgres stops during a checkpoint, then retries', async () => {
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token: aliceToken, path: NOTEBOOK });
    // Big enough that the upload is still going when Postgres goes away.
    await notebook.run('big = np.ones(600 * 1024 * 1024 // 8)');
    await notebook.close();

    const watcher = new pg.Client({ connectionString: postgres.url });
    await watcher.connect();
    const sweep = sweepAfterIdle();
    await waitFor(
      'the checkpoint upload to start',
      async () => {
        const r = await watcher.query(
          `SELECT count(*)::int AS n FROM blob_object_chunk c JOIN blob_object o ON o.id = c.object_id
             JOIN blob_upload u ON u.object_name = o.name JOIN checkpoint k ON k.id = u.checkpoint_id
           WHERE k.state = 'writing'`,
        );
        return (r.rows[0] as { n: number }).n > 0;
      },
      60_000,
    );
    await watcher.end().catch(() => undefined);
    await postgres.server.stop();

    assert.equal(await sweep, 'kept-checkpoint-failed');
    assert.equal((await admin.getUser('alice'))?.servers[0]?.ready, true, 'the server keeps running');

    await postgres.server.start();
    const after = new pg.Client({ connectionString: postgres.url });
    await after.connect();
    try {
      const complete = await after.query("SELECT id FROM checkpoint WHERE state = 'complete' ORDER BY completed_at");
      assert.deepEqual(
        complete.rows.map((r: { id: string }) => r.id),
        [firstCheckpointId],
        'the failed checkpoint never became visible',
      );
      // Every group the checkpoint lists is a complete object of the store.
      const blobs = await after.query(
        `SELECT sum(sb.bytes)::bigint AS total, bool_and(coalesce(o.complete, false)) AS complete
         FROM checkpoint_blob cb JOIN session_blob sb USING (kernel_session_id, sha256)
         LEFT JOIN blob_object o ON o.name = sb.object_name AND o.complete
         WHERE cb.checkpoint_id = $1`,
        [firstCheckpointId],
      );
      assert.equal((blobs.rows[0] as { complete: boolean }).complete, true, 'the last good checkpoint is intact');
      assert.ok(Number((blobs.rows[0] as { total: string }).total) > N * 8);
    } finally {
      await after.end();
    }

    // The next round, with Postgres back, checkpoints and culls.
    assert.equal(await sweepAfterIdle(), 'culled');
  });

  it('writes only what changed since the last checkpoint, and restores the unchanged groups from where they are', async () => {
    type Listed = { id: string; notebook_path: string; state: string; bytes_stored: number; bytes_reused: number };
    const path = 'incremental.ipynb';
    const newest = async (): Promise<Listed> => {
      const listed = (await (await api(aliceToken, 'api/checkpoints')).json()) as { checkpoints: Listed[] };
      const found = listed.checkpoints.find((c) => c.notebook_path.endsWith(path) && c.state === 'complete');
      assert.ok(found, `a complete checkpoint of ${path}`);
      return found;
    };
    const session = async (cells: string[]): Promise<string> => {
      if ((await admin.getUser('alice'))?.servers.length === 0) await startServer('alice');
      const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token: aliceToken, path });
      let out = '';
      for (const cell of cells) out = stdoutOf(await notebook.run(cell));
      await notebook.close();
      assert.equal(await sweepAfterIdle(), 'culled');
      await admin.waitForServerStopped('alice', '', { timeoutMs: 60_000 });
      return out;
    };
    const arrBytes = 200 * 1024 * 1024;

    await session(['import numpy as np', `arr = np.ones(${arrBytes / 8})\nitems = [1, 2]\nalias = items`]);
    const first = await newest();
    assert.ok(first.bytes_stored > arrBytes && first.bytes_reused === 0, 'the first checkpoint writes everything');

    // Restored from the first checkpoint; one small change, one read of the big array.
    await session(['items.append(3)\ntotal = float(arr.sum())']);
    const second = await newest();
    assert.notEqual(second.id, first.id);
    assert.ok(second.bytes_reused > arrBytes, `arr is referenced (${second.bytes_reused} bytes reused)`);
    assert.ok(second.bytes_stored < 4096, `only the changed groups are written (${second.bytes_stored} bytes)`);

    // Restored from the second checkpoint: arr is read from the first one's blob.
    const probe = await session(['print(float(arr.sum()), items, alias is items, total)']);
    assert.equal(probe.trim().split('\n').at(-1), `${arrBytes / 8}.0 [1, 2, 3] True ${arrBytes / 8}.0`);
    const third = await newest();
    assert.notEqual(third.id, second.id);
    assert.equal(third.bytes_stored, 0, 'nothing changed since the restore: nothing is written');
    assert.ok(third.bytes_reused > arrBytes);
  });

  it("lets users see and restore only their own checkpoints", async () => {
    const mine = (await (await api(bobToken, 'api/checkpoints')).json()) as { checkpoints: unknown[] };
    assert.deepEqual(mine.checkpoints, []);
    assert.equal((await api(bobToken, `api/checkpoints/${firstCheckpointId}`)).status, 404);
    assert.equal((await api(bobToken, `api/checkpoints/${firstCheckpointId}/restore`, { method: 'POST' })).status, 404);
    assert.equal((await api(bobToken, 'api/checkpoints?user=alice')).status, 403);
    // Blobs need a grant bound to the checkpoint; a user token is not one.
    const blob = await fetch(`${service.url}api/agent/checkpoints/${firstCheckpointId}/blobs/g0`, {
      headers: { Authorization: `Bearer ${bobToken}` },
    });
    assert.equal(blob.status, 401);
    assert.equal((await fetch(`${service.url}api/agent/checkpoints/${firstCheckpointId}/blobs/g0`)).status, 401);
    // Agent endpoints take a server's own token, not a user's.
    const register = await api(bobToken, 'api/agent/kernels', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    assert.equal(register.status, 403);
    // Nor anyone's history.
    assert.deepEqual(((await (await api(bobToken, 'api/sessions')).json()) as { sessions: unknown[] }).sessions, []);
    assert.equal((await api(bobToken, `api/sessions/${sessionId}/graph`)).status, 404);
    // And the owner can.
    assert.equal((await api(aliceToken, `api/checkpoints/${firstCheckpointId}`)).status, 200);
    assert.equal((await api(aliceToken, `api/sessions/${sessionId}/graph`)).status, 200);
  });

  it('records every cell in Postgres as it runs, and catches up after the store was down', async () => {
    await startServer('alice');
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token: aliceToken, path: 'history.ipynb' });
    const db = () => new pg.Client({ connectionString: postgres.url });
    const recorded = async (): Promise<string[]> => {
      const client = db();
      await client.connect();
      try {
        const rows = await client.query(
          `SELECT c.code FROM cell_execution c JOIN kernel_run r ON r.id = c.kernel_run_id
            WHERE r.kernel_id = $1 ORDER BY c.seq`,
          [notebook.kernelId],
        );
        return rows.rows.map((r: { code: string }) => r.code);
      } finally {
        await client.end();
      }
    };
    await notebook.run('one = 1');
    await notebook.run('two = one + 1');
    await waitFor('the first two records', async () => (await recorded()).length === 2);

    await postgres.server.stop();
    await notebook.run('three = two + 1'); // its record cannot be stored now
    await postgres.server.start();
    await notebook.run('four = three + 1');
    await notebook.close();

    const codes = await waitFor('all four records', async () => {
      const r = await recorded();
      return r.length === 4 ? r : null;
    });
    assert.deepEqual(codes, ['one = 1', 'two = one + 1', 'three = two + 1', 'four = three + 1']);
  });

  it('injects the agent into a kernel that started without it, and checkpoints it before culling', async () => {
    // A kernelspec of the user's own, without the agent: what a kernel started before the service
    // was installed looks like. The server finds it in the user's home.
    const spec = path.join(hub.dataDir, 'home', 'alice', '.local', 'share', 'jupyter', 'kernels', 'plain');
    await mkdir(spec, { recursive: true });
    await writeFile(
      path.join(spec, 'kernel.json'),
      JSON.stringify({ argv: ['python', '-m', 'ipykernel_launcher', '-f', '{connection_file}'], display_name: 'Plain', language: 'python' }),
    );
    if ((await admin.getUser('alice'))?.servers.length === 0) await startServer('alice');
    const notebook = await openNotebook({
      publicUrl: hub.publicUrl,
      user: 'alice',
      token: aliceToken,
      path: 'plain.ipynb',
      kernelName: 'plain',
    });
    const loaded = await notebook.run("import sys\nprint('jupyterhub_resume_agent' in sys.modules)\nkept = {'k': [1, 2]}");
    assert.equal(stdoutOf(loaded).trim(), 'False', 'the kernel starts without the agent');
    await notebook.close();

    assert.equal(await sweepAfterIdle(), 'culled');
    const listed = (await (await api(aliceToken, 'api/checkpoints')).json()) as {
      checkpoints: Array<{ id: string; notebook_path: string; kernel_name: string; state: string }>;
    };
    const adopted = listed.checkpoints.find((c) => c.kernel_name === 'plain');
    assert.ok(adopted, 'the agent-less kernel was checkpointed');
    assert.match(adopted.notebook_path, /(^|\/)plain\.ipynb$/);
    assert.equal(adopted.state, 'complete');
    const detail = (await (await api(aliceToken, `api/checkpoints/${adopted.id}`)).json()) as {
      variables: Array<{ name: string; how: string }>;
    };
    assert.equal(detail.variables.find((v) => v.name === 'kept')?.how, 'stored');
  });
});

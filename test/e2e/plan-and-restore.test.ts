/**
 * The replication plan, for real: a 500 MB array made by a fast cell is rebuilt at restore rather
 * than stored, a small value from a slow cell is stored, and only the array's cell runs again.
 * Bandwidths are set (not measured) so that the plan does not depend on this machine's disk.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningService } from '../../src/app.js';
import { isResumeError } from '../../src/errors.js';
import { HttpHubClient } from '../../src/hub/http-hub-client.js';
import { freePort } from '../fixtures/free-ports.js';
import { startHub, type StartedHub } from '../fixtures/hub.js';
import { openNotebook, saveNotebook, stdoutOf } from '../fixtures/notebook-user.js';
import { startPostgres } from '../fixtures/postgres.js';
import { startResumeService, TravellingClock } from '../fixtures/resume-service.js';
import { waitFor } from '../fixtures/wait-for.js';

const NOTEBOOK = 'plan.ipynb';
const ARRAY_CELL = 'import numpy as np\narr = np.ones(500 * 1024 * 1024 // 8)';
const SLOW_CELL = 'import time\ntime.sleep(4)\nanswer = 42';
const SIDE_EFFECT_CELL = "import os\nwith open(os.path.expanduser('~/plan-side-effect.txt'), 'a') as f:\n    f.write('ran\\n')";

type Detail = {
  state: string;
  restore_state: string;
  bytes_stored: number;
  plan: {
    strategy: string;
    predicted: { restoreS: number };
    groups: Array<{ names: string[]; decision: string; reason: string; storeCostS: number | null; recomputeCostS: number | null }>;
  } | null;
  restore_report: { variables: Array<{ name: string; status: string }>; rerun?: Array<{ index: number; error: string | null }> } | null;
  restore_time: { predicted_s: number; actual_s: number } | null;
};

describe('store or recompute, by plan, end to end', () => {
  let postgres: Awaited<ReturnType<typeof startPostgres>>;
  let hub: StartedHub;
  let service: RunningService;
  let admin: HttpHubClient;
  let token: string;
  const clock = new TravellingClock();

  const api = async <T>(path: string): Promise<T> =>
    (await (await fetch(`${service.url}${path}`, { headers: { Authorization: `token ${token}` } })).json()) as T;

  before(async () => {
    postgres = await startPostgres();
    const port = await freePort();
    hub = await startHub({ service: { url: `http://127.0.0.1:${port}`, name: 'resume' } });
    service = await startResumeService({
      port,
      hub,
      databaseUrl: postgres.url,
      clock,
      env: { RESUME_PLAN: 'optimal', RESUME_STORE_WRITE_MBPS: '100', RESUME_STORE_READ_MBPS: '200' },
    });
    admin = new HttpHubClient({ apiUrl: hub.apiUrl, token: hub.adminToken });
    token = await hub.tokenFor('alice');
  });

  after(async () => {
    await service?.stop();
    await hub?.stop();
    await postgres?.stop();
  });

  /** Starts alice's server, or uses it as it is when an earlier test left it running. */
  async function startServer(): Promise<void> {
    try {
      if ((await admin.startServer('alice')) === 'pending') await admin.waitForServerReady('alice', '', { timeoutMs: 60_000 });
    } catch (e) {
      if (!isResumeError(e) || e.code !== 'RESUME_ERR_HUB_SERVER_ALREADY_RUNNING') throw e;
    }
  }

  it('rebuilds the big array from its fast cell, stores the slow value, and re-runs nothing else', async () => {
    await startServer();
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token, path: NOTEBOOK });
    for (const cell of [ARRAY_CELL, SLOW_CELL, SIDE_EFFECT_CELL]) assert.equal((await notebook.run(cell)).status, 'ok');
    await notebook.close();

    clock.travel(2 * 3600);
    assert.equal((await service.culler!.sweep()).get('alice/'), 'culled');
    await admin.waitForServerStopped('alice', '', { timeoutMs: 60_000 });

    const listed = await api<{ checkpoints: Array<{ id: string }> }>('api/checkpoints');
    const id = listed.checkpoints[0]!.id;
    const planned = await api<Detail>(`api/checkpoints/${id}`);
    assert.equal(planned.plan?.strategy, 'optimal');
    const group = (name: string) => planned.plan?.groups.find((g) => g.names.includes(name));
    assert.equal(group('arr')?.decision, 'recompute');
    assert.match(group('arr')?.reason ?? '', /^rebuilding it re-runs cell \[1\] \(\d+\.\d+ s\), less than storing it costs \d+\.\d+ s$/);
    assert.equal(group('answer')?.decision, 'store');
    assert.match(group('answer')?.reason ?? '', /less than rebuilding it re-runs cell \[2\] \(4\.\d+ s\)$/);
    assert.ok(planned.bytes_stored < 1024 * 1024, `the array is not stored (${planned.bytes_stored} bytes)`);

    await startServer();
    const reopened = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token, path: NOTEBOOK });
    const probe = await reopened.run(
      "import os\nprint(arr.shape[0], float(arr.sum()), answer, open(os.path.expanduser('~/plan-side-effect.txt')).read().count('ran'))",
    );
    await reopened.close();
    const n = (500 * 1024 * 1024) / 8;
    assert.equal(stdoutOf(probe).trim().split('\n').at(-1), `${n} ${n}.0 42 1`);

    const restored = await waitFor('the restore report', async () => {
      const detail = await api<Detail>(`api/checkpoints/${id}`);
      return detail.restore_state === 'restored' ? detail : null;
    });
    const status = Object.fromEntries(restored.restore_report!.variables.map((v) => [v.name, v.status]));
    assert.equal(status['arr'], 'recomputed');
    assert.equal(status['answer'], 'stored');
    // Only the array's cell ran again: not the slow cell, not the side effect.
    assert.deepEqual(restored.restore_report!.rerun, [{ index: 0, error: null }]);
    assert.ok(restored.restore_time !== null && restored.restore_time.actual_s > 0 && restored.restore_time.predicted_s > 0);
  });

  it('reads never-rerun and always-store from the notebook\'s cell tags, which the kernel never sees', async () => {
    const path = 'tagged.ipynb';
    // Both arrays come from fast cells, so untagged they would be rebuilt like arr above.
    const cells = [
      { id: 'make-sent', source: 'import numpy as np\nsent = np.ones(50 * 1024 * 1024 // 8)', tags: ['never-rerun'] },
      { id: 'make-kept', source: 'kept = np.ones(50 * 1024 * 1024 // 8) * 2', tags: ['always-store', 'other-tag'] },
      { id: 'make-free', source: 'free = np.ones(50 * 1024 * 1024 // 8) * 3' },
    ];
    await startServer();
    await saveNotebook({ publicUrl: hub.publicUrl, user: 'alice', token, path, cells });
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token, path });
    for (const cell of cells) await notebook.runCell(cell.id, cell.source);
    await notebook.close();

    clock.travel(2 * 3600);
    assert.equal((await service.culler!.sweep()).get('alice/'), 'culled');
    await admin.waitForServerStopped('alice', '', { timeoutMs: 60_000 });

    const listed = await api<{ checkpoints: Array<{ id: string; notebook_path: string }> }>('api/checkpoints');
    const id = listed.checkpoints.find((c) => c.notebook_path.endsWith(path))!.id;
    const planned = await api<Detail>(`api/checkpoints/${id}`);
    const group = (name: string) => planned.plan?.groups.find((g) => g.names.includes(name));
    assert.equal(group('sent')?.decision, 'store');
    assert.match(group('sent')?.reason ?? '', /^rebuilding it would re-run cell \[\d+\], which is marked never-rerun$/);
    assert.equal(group('kept')?.decision, 'store');
    assert.match(group('kept')?.reason ?? '', /^cell \[\d+\] is marked always-store$/);
    assert.equal(group('free')?.decision, 'recompute');
  });
});

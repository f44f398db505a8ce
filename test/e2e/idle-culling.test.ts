/**
 * Real time, no clock travel: a server whose kernel the service watches (agent loaded, cells
 * recorded, the culler listing its kernels every round) is still culled once idle, no earlier than
 * the timeout and not much later. The service's own traffic must not look like user activity.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningService } from '../../src/app.js';
import { HttpHubClient } from '../../src/hub/http-hub-client.js';
import { startHub, type StartedHub } from '../fixtures/hub.js';
import { openNotebook } from '../fixtures/notebook-user.js';
import { waitFor } from '../fixtures/wait-for.js';
import { startPostgres } from '../fixtures/postgres.js';
import { freePort } from '../fixtures/free-ports.js';
import { startResumeService } from '../fixtures/resume-service.js';

const TIMEOUT_S = 20;
const EVERY_S = 2;
const ACTIVITY_INTERVAL_S = 5;

describe('idle culling in real time', () => {
  let postgres: Awaited<ReturnType<typeof startPostgres>>;
  let hub: StartedHub;
  let service: RunningService;

  before(async () => {
    postgres = await startPostgres();
    const port = await freePort();
    hub = await startHub({
      service: { url: `http://127.0.0.1:${port}`, name: 'resume' },
      lastActivityIntervalS: ACTIVITY_INTERVAL_S,
      serverActivityIntervalS: ACTIVITY_INTERVAL_S,
    });
    service = await startResumeService({
      port,
      hub,
      databaseUrl: postgres.url,
      env: { RESUME_CULL_TIMEOUT: String(TIMEOUT_S), RESUME_CULL_EVERY: String(EVERY_S) },
    });
  });

  after(async () => {
    await service?.stop();
    await hub?.stop();
    await postgres?.stop();
  });

  it('culls a watched idle server once the timeout has passed, and not before', async () => {
    const admin = new HttpHubClient({ apiUrl: hub.apiUrl, token: hub.adminToken });
    if ((await admin.startServer('alice')) === 'pending') {
      await admin.waitForServerReady('alice', '', { timeoutMs: 60_000 });
    }
    const token = await hub.tokenFor('alice');
    const notebook = await openNotebook({ publicUrl: hub.publicUrl, user: 'alice', token, path: 'idle.ipynb' });
    await notebook.run('x = 1');
    await notebook.close();
    const lastUserActivity = Date.now();

    // The agent registered its kernel, so the culler reaches this server directly every round.
    await waitFor(
      'the server to be culled',
      async () => ((await admin.getUser('alice'))?.servers.length ?? 1) === 0,
      (TIMEOUT_S + 60) * 1000,
    );
    const idleS = (Date.now() - lastUserActivity) / 1000;
    assert.ok(idleS >= TIMEOUT_S, `culled after ${idleS.toFixed(1)} s, before the ${TIMEOUT_S} s timeout`);
    // Timeout + one round + the hub's activity intervals + the checkpoint itself.
    const latest = TIMEOUT_S + EVERY_S + 2 * ACTIVITY_INTERVAL_S + 15;
    assert.ok(idleS <= latest, `culled after ${idleS.toFixed(1)} s, later than ${latest} s`);

    const checkpoints = (await (
      await fetch(`${service.url}api/checkpoints`, { headers: { Authorization: `token ${token}` } })
    ).json()) as { checkpoints: Array<{ notebook_path: string; state: string }> };
    assert.equal(checkpoints.checkpoints.length, 1);
    assert.match(checkpoints.checkpoints[0]?.notebook_path ?? '', /(^|\/)idle\.ipynb$/);
    assert.equal(checkpoints.checkpoints[0]?.state, 'complete');
  });
});

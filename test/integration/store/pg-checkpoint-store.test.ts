import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isResumeError } from '../../../src/errors.js';
import type { CellRecord, Checkpoint, ExpectedBlob, KernelRun, KernelSession, RetentionPolicy, StoredBlob } from '../../../src/store/checkpoint-store.js';
import { PgBlobStore } from '../../../src/store/postgres/pg-blob-store.js';
import { PgObjectStore } from '../../../src/store/postgres/pg-object-store.js';
import { PgCheckpointStore } from '../../../src/store/postgres/pg-checkpoint-store.js';
import { startPostgres, type StartedPostgres } from '../../fixtures/postgres.js';

function cell(seq: number, code: string, extra: Partial<CellRecord> = {}): CellRecord {
  return {
    seq,
    executionCount: seq,
    code,
    startedAt: new Date(Date.UTC(2026, 10, 21, 19, 30, seq)),
    durationS: 0.001 * seq,
    status: 'ok',
    error: null,
    created: [],
    deleted: [],
    rebound: [],
    ...extra,
  };
}

describe('PgCheckpointStore', () => {
  let postgres: StartedPostgres;
  let store: PgCheckpointStore;
  let blobs: PgBlobStore;
  let notebooks = 0;

  before(async () => {
    postgres = await startPostgres();
    store = new PgCheckpointStore(postgres.pool);
    blobs = new PgBlobStore(postgres.pool, new PgObjectStore(postgres.pool));
  });

  after(async () => {
    await postgres?.stop();
  });

  async function newSession(user = 'alice'): Promise<KernelSession> {
    return store.upsertSession({ user, server: '', notebookPath: `work/nb-${++notebooks}.ipynb`, kernelName: 'python3' });
  }

  async function newRun(session: KernelSession, restoredFromCheckpointId: string | null = null): Promise<KernelRun> {
    return store.createRun({
      sessionId: session.id,
      kernelId: `kernel-${Math.random().toString(16).slice(2)}`,
      serverUrl: `http://127.0.0.1:41213/user/${session.user}/`,
      agentVersion: '0.1.0',
      restoredFromCheckpointId,
    });
  }

  /** A complete checkpoint of `run` with one blob holding `content`. */
  async function completeCheckpoint(
    session: KernelSession,
    run: KernelRun,
    options: { content?: string; cells?: CellRecord[]; restoreOnNextStart?: boolean } = {},
  ) {
    const checkpoint = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'cull' });
    const g0 = await blobs.write(checkpoint.id, 'g0', Readable.from([Buffer.from(options.content ?? 'state')]));
    return store.commitCheckpoint({
      checkpointId: checkpoint.id,
      manifest: { checkpoint_id: checkpoint.id, groups: [{ key: 'g0', bytes: g0.bytes, sha256: g0.sha256 }] },
      cells: options.cells ?? [],
      blobs: [g0],
      restoreOnNextStart: options.restoreOnNextStart ?? false,
    });
  }

  it('finds the same session for the same key and a new one for another notebook', async () => {
    const key = { user: 'bob', server: 'gpu', notebookPath: 'a.ipynb', kernelName: 'python3' };
    const [a, b] = await Promise.all([store.upsertSession(key), store.upsertSession(key)]);
    assert.equal(a.id, b.id);
    assert.deepEqual({ user: a.user, server: a.server, notebookPath: a.notebookPath, kernelName: a.kernelName }, key);
    const other = await store.upsertSession({ ...key, notebookPath: 'b.ipynb' });
    assert.notEqual(other.id, a.id);
    assert.deepEqual(await store.getSession(a.id), a);
    assert.equal(await store.getSession('not-a-uuid'), null);
  });

  it('lists the runs of a server newest first, each with its session', async () => {
    const session = await store.upsertSession({ user: 'carol', server: 's1', notebookPath: 'x.ipynb', kernelName: 'python3' });
    const older = await store.createRun({
      sessionId: session.id,
      kernelId: 'k-old',
      serverUrl: 'http://127.0.0.1:1/user/carol/s1/',
      agentVersion: '0.1.0',
      restoredFromCheckpointId: null,
      startedAt: new Date('2026-01-01T00:00:00Z'),
    });
    const newer = await newRun(session);
    const runs = await store.listRunsForServer('carol', 's1');
    assert.deepEqual(runs.map((r) => r.id), [newer.id, older.id]);
    assert.deepEqual(runs[1]?.session, session);
    assert.deepEqual(await store.getRun(older.id), older);
    assert.deepEqual(await store.listRunsForServer('carol', ''), []);
  });

  it('refuses to commit a checkpoint whose blob is missing or mismatched, and the latest complete one stays', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const good = await completeCheckpoint(session, run, { content: 'good' });
    assert.equal(good.state, 'complete');

    const next = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'cull' });
    const g0 = await blobs.write(next.id, 'g0', Readable.from([Buffer.from('twelve bytes')]));
    const wrongSize: StoredBlob = { ...g0, bytes: g0.bytes + 1 };
    const wrongSha: StoredBlob = { ...g0, sha256: 'f'.repeat(64) };
    const missing: StoredBlob = { key: 'g1', bytes: 3, sha256: g0.sha256 };

    for (const expected of [[wrongSize], [wrongSha], [g0, missing]]) {
      await assert.rejects(
        store.commitCheckpoint({ checkpointId: next.id, manifest: { v: 1 }, cells: [], blobs: expected, restoreOnNextStart: true }),
        (e: unknown) => {
          assert.ok(isResumeError(e));
          assert.equal(e.code, 'RESUME_ERR_CHECKPOINT_BLOB_MISMATCH');
          assert.equal(e.status, 409);
          assert.ok(e.hint);
          return true;
        },
      );
    }
    const after = await store.getCheckpoint(next.id);
    assert.equal(after?.state, 'writing', 'nothing changed');
    assert.equal(after?.restoreState, 'none');
    assert.equal((await store.latestCompleteCheckpoint(session.id))?.id, good.id);

    // The same checkpoint commits once the blobs match.
    const committed = await store.commitCheckpoint({ checkpointId: next.id, manifest: { v: 1 }, cells: [], blobs: [g0], restoreOnNextStart: false });
    assert.equal(committed.bytesStored, g0.bytes);
    assert.equal((await store.latestCompleteCheckpoint(session.id))?.id, next.id);
  });

  it('never lets a failed checkpoint change the latest complete one', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const good = await completeCheckpoint(session, run);
    const doomed = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'cull' });
    await blobs.write(doomed.id, 'g0', Readable.from([Buffer.from('half')]));

    await store.failCheckpoint(doomed.id, 'agent timed out');

    const failed = await store.getCheckpoint(doomed.id);
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.error, 'agent timed out');
    assert.equal((await store.latestCompleteCheckpoint(session.id))?.id, good.id);
    await assert.rejects(
      store.commitCheckpoint({ checkpointId: doomed.id, manifest: {}, cells: [], blobs: [], restoreOnNextStart: true }),
      { code: 'RESUME_ERR_CHECKPOINT_NOT_WRITING' },
    );
    // Failing a complete checkpoint is a no-op.
    await store.failCheckpoint(good.id, 'too late');
    const stillGood = await store.getCheckpoint(good.id);
    assert.equal(stillGood?.state, 'complete');
    assert.equal(stillGood?.error, null);
  });

  it('returns the committed checkpoint when a commit is retried with the same manifest', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const first = await completeCheckpoint(session, run);
    const again = await store.commitCheckpoint({
      checkpointId: first.id,
      manifest: first.manifest,
      cells: [],
      blobs: [],
      restoreOnNextStart: false,
    });
    assert.deepEqual(again, first);
    await assert.rejects(
      store.commitCheckpoint({ checkpointId: first.id, manifest: { other: true }, cells: [], blobs: [], restoreOnNextStart: false }),
      { code: 'RESUME_ERR_CHECKPOINT_NOT_WRITING' },
    );
  });

  it('hands a pending restore to exactly one of two kernels claiming it at once', async () => {
    for (let round = 0; round < 5; round++) {
      const session = await newSession();
      const culled = await newRun(session);
      const checkpoint = await completeCheckpoint(session, culled, { restoreOnNextStart: true });
      assert.equal(checkpoint.restoreState, 'pending');
      const [tab1, tab2] = await Promise.all([newRun(session), newRun(session)]);

      const claims = await Promise.all([
        store.claimPendingRestore(session.id, tab1.id),
        store.claimPendingRestore(session.id, tab2.id),
      ]);

      const winners = claims.filter((c) => c !== null);
      assert.equal(winners.length, 1, `round ${round}: exactly one claim succeeds`);
      const winnerRun = claims[0] !== null ? tab1 : tab2;
      assert.equal(winners[0]?.id, checkpoint.id);
      assert.equal(winners[0]?.restoreState, 'claimed');
      assert.equal(winners[0]?.restoredIntoRunId, winnerRun.id);
      assert.equal((await store.getRun(winnerRun.id))?.restoredFromCheckpointId, checkpoint.id);
      // A retry by the winner gets the same checkpoint; the loser still gets nothing.
      assert.equal((await store.claimPendingRestore(session.id, winnerRun.id))?.id, checkpoint.id);
      assert.equal(await store.claimPendingRestore(session.id, winnerRun === tab1 ? tab2.id : tab1.id), null);
    }
  });

  it('supersedes an older pending restore when a newer checkpoint is committed for restore', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const older = await completeCheckpoint(session, run, { restoreOnNextStart: true });
    const newer = await completeCheckpoint(session, run, { restoreOnNextStart: true });
    assert.equal((await store.getCheckpoint(older.id))?.restoreState, 'none');
    const claimed = await store.claimPendingRestore(session.id, (await newRun(session)).id);
    assert.equal(claimed?.id, newer.id);
  });

  it('makes a restored or older checkpoint pending again on request', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const older = await completeCheckpoint(session, run);
    const newer = await completeCheckpoint(session, run, { restoreOnNextStart: true });

    const requested = await store.requestRestore(older.id);

    assert.equal(requested.restoreState, 'pending');
    assert.equal((await store.getCheckpoint(newer.id))?.restoreState, 'none');
    const writing = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'manual' });
    await assert.rejects(store.requestRestore(writing.id), { code: 'RESUME_ERR_CHECKPOINT_NOT_COMPLETE', status: 409 });
  });

  it('gives a restored run the checkpoint’s cells followed by its own', async () => {
    const session = await newSession();
    const first = await newRun(session);
    const history = [cell(1, 'import numpy as np'), cell(2, 'a = np.arange(3)', { created: ['a'] })];
    await store.appendCells(first.id, history);
    const checkpoint = await completeCheckpoint(session, first, { cells: await store.historyOfRun(first.id), restoreOnNextStart: true });
    assert.deepEqual(checkpoint.cells, history);

    const second = await newRun(session);
    await store.claimPendingRestore(session.id, second.id);
    const own = [
      cell(1, 'b = a * 2', { created: ['b'] }),
      cell(2, '1 / 0', { status: 'error', error: { ename: 'ZeroDivisionError', evalue: 'division by zero' } }),
    ];
    await store.appendCells(second.id, own);

    assert.deepEqual(await store.historyOfRun(second.id), [...history, ...own]);
    await store.recordRestoreReport(checkpoint.id, second.id, true, { variables: [{ name: 'a', status: 'stored' }] });
    const reported = await store.getCheckpoint(checkpoint.id);
    assert.equal(reported?.restoreState, 'restored');
    assert.deepEqual(reported?.restoreReport, { variables: [{ name: 'a', status: 'stored' }] });
    await assert.rejects(store.recordRestoreReport(checkpoint.id, first.id, false, {}), { code: 'RESUME_ERR_RESTORE_NOT_CLAIMED' });
  });

  it('keeps what each cell read, changed and grouped, and leaves it unknown for cells that did not say', async () => {
    const run = await newRun(await newSession());
    await store.appendCells(run.id, [
      cell(1, 'l1 = [1]\ndlist = [l1]', { read: [], readAll: false, modified: [], groups: [['dlist', 'l1']], effectsKnown: true, timingKnown: true }),
      cell(2, 'l1.append(2)', { read: ['l1'], readAll: false, modified: ['dlist', 'l1'], groups: [['dlist', 'l1']], effectsKnown: true, timingKnown: true }),
      cell(3, 'x = 1'), // from an agent that predates the dependency fields
    ]);
    const [first, second, old] = await store.historyOfRun(run.id);
    assert.deepEqual(second?.read, ['l1']);
    assert.deepEqual(second?.modified, ['dlist', 'l1']);
    assert.deepEqual(first?.groups, [['dlist', 'l1']]);
    assert.equal(second?.readAll, false);
    assert.equal(second?.effectsKnown, true);
    assert.equal(old?.read, undefined, 'not reported stays unknown');
    assert.equal(old?.effectsKnown, undefined);
  });

  it('keeps the cost facts of each cell’s groups, and leaves them unknown for cells that did not report them', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const groupCosts = [
      { bytes: 8_000_153, bytesExact: true, serializable: true, unserializable: [] },
      {
        bytes: 96,
        bytesExact: false,
        serializable: false,
        unserializable: [{ name: 'gen', reason: "TypeError: cannot pickle 'generator' object" }],
      },
    ];
    const reported = cell(1, 'a = np.zeros(1_000_000)\nnums = [1]\ngen = (n for n in nums)', {
      created: ['a', 'nums', 'gen'],
      groups: [['a'], ['gen', 'nums']],
      groupCosts,
    });
    const unreported = cell(2, 'b = 1', { created: ['b'], groups: [['b']] }); // an agent without cost facts
    await store.appendCells(run.id, [reported, unreported]);

    const history = await store.historyOfRun(run.id);
    assert.deepEqual(history, [reported, unreported]);
    assert.equal('groupCosts' in (history[1] ?? {}), false, 'not reported stays unknown, not "no costs"');
    const checkpoint = await completeCheckpoint(session, run, { cells: history });
    assert.deepEqual((await store.getCheckpoint(checkpoint.id))?.cells, [reported, unreported]);

    // One entry per group, or the row is refused (migration 0005's check).
    const misaligned = cell(3, 'c = [1]', { created: ['c'], groups: [['c']], groupCosts: [] });
    await assert.rejects(store.appendCells(run.id, [misaligned]), (err) =>
      isResumeError(err) && err.code === 'RESUME_ERR_STORE_INVALID_INPUT' && /cell_execution_group_costs_check/.test(err.message),
    );
  });

  it('ignores cells whose seq is already stored, so retried batches are harmless', async () => {
    const session = await newSession();
    const run = await newRun(session);
    const one = cell(1, 'x = 1', { created: ['x'] });
    const two = cell(2, 'y = x + 1', { created: ['y'] });
    await store.appendCells(run.id, [one, two]);

    await store.appendCells(run.id, [{ ...two, code: 'a retry that differs' }, cell(3, 'del x', { deleted: ['x'] })]);
    await store.appendCells(run.id, [one, two]);

    const history = await store.historyOfRun(run.id);
    assert.deepEqual(history.map((c) => [c.seq, c.code]), [
      [1, 'x = 1'],
      [2, 'y = x + 1'],
      [3, 'del x'],
    ]);
    assert.deepEqual(history[2]?.deleted, ['x']);
    await assert.rejects(store.appendCells('00000000-0000-4000-8000-000000000000', [one]), { code: 'RESUME_ERR_RUN_NOT_FOUND', status: 404 });
  });

  it('lists checkpoints newest first, only the given user’s when asked', async () => {
    const dave = await newSession('dave');
    const erin = await newSession('erin');
    const daveCheckpoint = await completeCheckpoint(dave, await newRun(dave));
    const erinCheckpoint = await completeCheckpoint(erin, await newRun(erin));

    const daves = await store.listCheckpoints({ user: 'dave' });
    assert.deepEqual(daves.map((c) => c.id), [daveCheckpoint.id]);
    assert.equal(daves[0]?.notebookPath, dave.notebookPath);
    assert.equal('cells' in (daves[0] ?? {}), false);
    const all = (await store.listCheckpoints({})).map((c) => c.id);
    assert.ok(all.indexOf(erinCheckpoint.id) < all.indexOf(daveCheckpoint.id));
  });

  it('refuses a run restored from a checkpoint of another session, and a checkpoint of a run in another session', async () => {
    const mine = await newSession();
    const theirs = await newSession('mallory');
    const theirCheckpoint = await completeCheckpoint(theirs, await newRun(theirs));
    await assert.rejects(newRun(mine, theirCheckpoint.id), { code: 'RESUME_ERR_CHECKPOINT_NOT_FOUND' });
    const myRun = await newRun(mine);
    await assert.rejects(store.createCheckpoint({ sessionId: theirs.id, runId: myRun.id, trigger: 'manual' }), {
      code: 'RESUME_ERR_RUN_NOT_FOUND',
    });
  });

  describe('incremental checkpoints, retention and quota', () => {
    /** A fresh session and a run of it. */
    async function newTarget(user = 'alice'): Promise<{ session: KernelSession; run: KernelRun }> {
      const session = await newSession(user);
      return { session, run: await newRun(session) };
    }

    /** Writes `written` (key → content) under a new checkpoint; `commit` commits it with `reused`. */
    async function checkpoint(
      target: { session: KernelSession; run: KernelRun },
      written: Record<string, string>,
      reused: ExpectedBlob[] = [],
      commitOptions: { retention?: RetentionPolicy; quotaBytes?: number; now?: Date } = {},
    ): Promise<{ id: string; stored: StoredBlob[]; commit: () => Promise<Checkpoint> }> {
      const { id } = await store.createCheckpoint({ sessionId: target.session.id, runId: target.run.id, trigger: 'periodic' });
      const stored: StoredBlob[] = [];
      for (const [key, content] of Object.entries(written)) stored.push(await blobs.write(id, key, Readable.from([Buffer.from(content)])));
      const commit = () =>
        store.commitCheckpoint({
          checkpointId: id,
          manifest: { checkpoint_id: id },
          cells: [],
          blobs: stored,
          reused,
          restoreOnNextStart: false,
          ...commitOptions,
        });
      return { id, stored, commit };
    }

    const reuse = (key: string, from: { stored: StoredBlob[] }, fromKey: string): ExpectedBlob => {
      const blob = from.stored.find((b) => b.key === fromKey)!;
      return { key, bytes: blob.bytes, sha256: blob.sha256 };
    };

    async function readAll(checkpointId: string, key: string): Promise<string> {
      const { body } = await blobs.read(checkpointId, key);
      const pieces: Buffer[] = [];
      for await (const piece of body) pieces.push(piece as Buffer);
      return Buffer.concat(pieces).toString();
    }

    async function objectCount(sessionId: string): Promise<number> {
      let n = 0;
      for await (const _ of blobs.objects.list(`sessions/${sessionId}/`)) n++;
      return n;
    }

    it('commits a checkpoint that writes the changed group and lists the unchanged one the session holds', async () => {
      const target = await newTarget();
      const first = await checkpoint(target, { g0: 'big unchanged array', g1: 'counts v1' });
      await first.commit();
      const second = await checkpoint(target, { g1: 'counts v2' }, [reuse('g0', first, 'g0')]);
      const committed = await second.commit();

      assert.equal(committed.state, 'complete');
      assert.equal(committed.bytesStored, 'counts v2'.length);
      assert.equal(committed.bytesReused, 'big unchanged array'.length);
      assert.equal(await readAll(second.id, 'g0'), 'big unchanged array');
      assert.equal(await readAll(second.id, 'g1'), 'counts v2');
      assert.equal(await objectCount(target.session.id), 3, 'the unchanged array is stored once');
    });

    it('stores bytes the session already holds only once, even when uploaded again', async () => {
      const target = await newTarget();
      const first = await checkpoint(target, { g0: 'same bytes' });
      await first.commit();
      const second = await checkpoint(target, { g3: 'same bytes' });
      await second.commit();

      assert.equal(await objectCount(target.session.id), 1);
      assert.equal(await readAll(second.id, 'g3'), 'same bytes');
    });

    it('refuses to reuse content of another session, content it does not hold, or with another size', async () => {
      const target = await newTarget();
      const other = await newTarget('mallory');
      const theirs = await checkpoint(other, { g0: 'not yours' });
      await theirs.commit();
      const first = await checkpoint(target, { g0: 'mine' });
      await first.commit();

      const attempts: Array<[string, ExpectedBlob, RegExp]> = [
        ['another session', reuse('g0', theirs, 'g0'), /does not hold/],
        ['unknown content', { ...reuse('g0', first, 'g0'), sha256: 'f'.repeat(64) }, /does not hold/],
        ['another size', { ...reuse('g0', first, 'g0'), bytes: 99 }, /the manifest says 99/],
      ];
      for (const [what, reused, message] of attempts) {
        const attempt = await checkpoint(target, { g1: 'new' }, [reused]);
        await assert.rejects(attempt.commit(), (e: unknown) => {
          assert.ok(isResumeError(e), what);
          assert.equal(e.code, 'RESUME_ERR_CHECKPOINT_BLOB_MISMATCH', what);
          assert.match(e.message, message, what);
          return true;
        });
        assert.equal((await store.getCheckpoint(attempt.id))?.state, 'writing', `${what}: nothing committed`);
      }
      assert.equal((await store.latestCompleteCheckpoint(target.session.id))?.id, first.id, 'the last good checkpoint stays');
    });

    it('keeps the newest K checkpoints as new ones commit; their shared blobs stay, the rest become garbage', async () => {
      const target = await newTarget();
      const retention = { keepLast: 2, maxAgeS: 86_400 };
      const ids: string[] = [];
      let previous: { stored: StoredBlob[] } | null = null;
      for (const version of [1, 2, 3, 4]) {
        const reused = previous === null ? [] : [reuse('g0', previous, 'g0')];
        const next = await checkpoint(target, { g1: `counts v${version}` }, reused, { retention });
        // g0 written once by the first checkpoint, reused by every later one.
        if (previous === null) next.stored.push(await blobs.write(next.id, 'g0', Readable.from([Buffer.from('shared array')])));
        await next.commit();
        ids.push(next.id);
        previous = previous ?? next;
      }

      assert.deepEqual(
        (await store.listCheckpoints({ user: 'alice' })).filter((c) => c.sessionId === target.session.id).map((c) => c.id),
        [ids[3], ids[2]],
        'only the newest two are left',
      );
      assert.equal(await objectCount(target.session.id), 5, 'four counters and the shared array, until garbage collection');
      await blobs.collectGarbage({ abandonedAfterS: 600 });
      assert.equal(await objectCount(target.session.id), 3, 'counts v1 and v2 went with their checkpoints');
      assert.equal(await readAll(ids[3] as string, 'g0'), 'shared array', 'the blob the first checkpoint wrote lives on');
    });

    it('drops checkpoints older than the maximum age, but never the one the running kernel was restored from', async () => {
      const target = await newTarget();
      const old = await checkpoint(target, { g0: 'a week old' });
      await old.commit();
      const restoredRun = await newRun(target.session, old.id);
      const run = { session: target.session, run: restoredRun };
      const recent = await checkpoint(run, { g0: 'recent' });
      await recent.commit();
      const inAWeek = new Date(Date.now() + 7 * 86_400_000);

      const deleted = await store.pruneCheckpoints({ keepLast: 5, maxAgeS: 3 * 86_400 }, inAWeek);

      assert.ok(deleted.includes(recent.id), 'the recent one is too old a week from now');
      assert.ok(!deleted.includes(old.id), 'the checkpoint the newest run began from stays');
      assert.equal((await store.getCheckpoint(old.id))?.state, 'complete');
      assert.equal((await store.historyOfRun(restoredRun.id)).length, 0);
    });

    it('refuses a commit over the user’s quota, keeping the previous checkpoint and changing nothing', async () => {
      const target = await newTarget('quota-user');
      const first = await checkpoint(target, { g0: 'x'.repeat(600) });
      await first.commit();
      const retention = { keepLast: 1, maxAgeS: 86_400 };

      // Retention drops the first one as this one commits: 700 bytes held, under a 1000-byte quota.
      const fits = await checkpoint(target, { g0: 'y'.repeat(700) }, [], { retention, quotaBytes: 1000 });
      await fits.commit();
      assert.equal(await blobs.usage('quota-user'), 700);

      const tooBig = await checkpoint(target, { g0: 'z'.repeat(1200) }, [], { retention, quotaBytes: 1000 });
      await assert.rejects(tooBig.commit(), (e: unknown) => {
        assert.ok(isResumeError(e));
        assert.equal(e.code, 'RESUME_ERR_QUOTA_EXCEEDED');
        assert.equal(e.status, 507);
        assert.match(e.message, /would bring your saved sessions to 1\.2 kB, over your quota of 1\.0 kB/);
        assert.match(e.message, /your previous checkpoint is kept/);
        return true;
      });
      assert.equal((await store.latestCompleteCheckpoint(target.session.id))?.id, fits.id);
      assert.equal(await readAll(fits.id, 'g0'), 'y'.repeat(700));
      assert.equal((await store.getCheckpoint(tooBig.id))?.state, 'writing', 'the runner marks it failed');
    });

    it('deletes a checkpoint on request, but not one being written or the one the running kernel began from', async () => {
      const target = await newTarget();
      const old = await checkpoint(target, { g0: 'old' });
      await old.commit();
      const restoredRun = await newRun(target.session, old.id);
      const writing = await checkpoint({ session: target.session, run: restoredRun }, { g0: 'half' });
      const later = await checkpoint({ session: target.session, run: restoredRun }, { g0: 'later' });
      await later.commit();

      for (const id of [old.id, writing.id]) {
        await assert.rejects(store.deleteCheckpoint(id), { code: 'RESUME_ERR_CHECKPOINT_IN_USE', status: 409 });
      }
      await store.deleteCheckpoint(later.id);
      assert.equal(await store.getCheckpoint(later.id), null);
      await assert.rejects(store.deleteCheckpoint(later.id), { code: 'RESUME_ERR_CHECKPOINT_NOT_FOUND' });
    });

    it('deletes a whole session with its checkpoints and blob listings', async () => {
      const target = await newTarget();
      const first = await checkpoint(target, { g0: 'kept' });
      await first.commit();
      const second = await checkpoint(target, {}, [reuse('g0', first, 'g0')]);
      await second.commit();

      await postgres.pool.query('DELETE FROM kernel_session WHERE id = $1', [target.session.id]);
      assert.equal(await store.getCheckpoint(first.id), null);
      assert.equal(await store.getCheckpoint(second.id), null);
      await blobs.collectGarbage({ abandonedAfterS: 600 });
      assert.equal(await objectCount(target.session.id), 0, 'its objects are garbage-collected');
    });
  });
});

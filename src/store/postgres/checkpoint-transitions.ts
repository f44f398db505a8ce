/**
 * The state changes of a checkpoint: commit, and the restore bookkeeping (request, claim, report).
 * Each runs inside a transaction the store opened and takes the row locks it needs.
 *
 * Lock order, the same everywhere so transactions never deadlock: the session row, then checkpoint
 * rows. Commits and restore requests of one session therefore take turns, which keeps "at most one
 * pending restore per session" (a unique index backs it) and orders completion times.
 */
import type pg from 'pg';
import { ResumeError } from '../../errors.js';
import type { Checkpoint, CommitCheckpointInput, ExpectedBlob, RetentionPolicy } from '../checkpoint-store.js';
import { usedBytes } from './pg-blob-store.js';
import { CHECKPOINT_COLUMNS, cellToJson, toCheckpoint, toStoredBlob } from './row-schemas.js';
import { checkpointNotFound, checkpointNotWriting, runNotFound } from './store-errors.js';

/**
 * Verifies the checkpoint's stored blobs against the expected ones and flips it to complete.
 * @returns the complete checkpoint, or null when it already was complete with this same manifest
 *   (a retried commit whose reply was lost).
 * @throws ResumeError RESUME_ERR_CHECKPOINT_BLOB_MISMATCH (the transaction must roll back),
 *   RESUME_ERR_CHECKPOINT_NOT_FOUND, RESUME_ERR_CHECKPOINT_NOT_WRITING.
 */
export async function commitCheckpointRow(client: pg.PoolClient, input: CommitCheckpointInput): Promise<Checkpoint | null> {
  const { checkpointId } = input;
  const manifest = JSON.stringify(input.manifest);
  const sessionId = await lockSessionOf(client, checkpointId);
  // The checkpoint row lock also makes a blob completing at this moment wait, then see `complete`.
  const locked = await client.query<{ state: string; same_manifest: boolean | null }>(
    'SELECT state, manifest = $2::jsonb AS same_manifest FROM checkpoint WHERE id = $1 FOR NO KEY UPDATE',
    [checkpointId, manifest],
  );
  const state = locked.rows[0]?.state;
  if (state === 'complete' && locked.rows[0]?.same_manifest === true) return null;
  if (state !== 'writing') throw checkpointNotWriting(checkpointId, state ?? 'deleted');

  const stored = (
    await client.query(
      `SELECT cb.key, sb.bytes, sb.sha256 FROM checkpoint_blob cb JOIN session_blob sb USING (kernel_session_id, sha256)
       WHERE cb.checkpoint_id = $1`,
      [checkpointId],
    )
  ).rows.map(toStoredBlob);
  const reused = input.reused ?? [];
  const problems = [
    ...blobProblems([...input.blobs, ...reused], new Map(stored.map((b) => [b.key, b])), new Set(reused.map((r) => r.key))),
    ...(await reuseProblems(client, sessionId, reused)),
  ];
  if (problems.length > 0) {
    throw new ResumeError('RESUME_ERR_CHECKPOINT_BLOB_MISMATCH', `checkpoint ${checkpointId} cannot be committed: ${problems.join('; ')}`, {
      status: 409,
      hint: 'Upload the listed blobs again and commit again (or fail the checkpoint); the last complete checkpoint is unchanged.',
      context: { checkpointId, problems },
    });
  }
  if (input.restoreOnNextStart) {
    // The newest checkpoint is the one to restore; an older pending one is superseded.
    await client.query("UPDATE checkpoint SET restore_state = 'none' WHERE kernel_session_id = $1 AND restore_state = 'pending'", [
      sessionId,
    ]);
  }
  if (reused.length > 0) {
    // The session holds these bytes (reuseProblems checked, and the session row lock keeps garbage
    // collection away until commit): list them for this checkpoint too.
    await client.query(
      `INSERT INTO checkpoint_blob (checkpoint_id, key, kernel_session_id, sha256)
       SELECT $1, r.key, $2, r.sha256 FROM unnest($3::text[], $4::text[]) AS r(key, sha256)`,
      [checkpointId, sessionId, reused.map((r) => r.key), reused.map((r) => r.sha256.toLowerCase())],
    );
  }
  const { rows } = await client.query(
    `UPDATE checkpoint
     SET state = 'complete', completed_at = clock_timestamp(), manifest = $2::jsonb, cells = $3::jsonb,
         bytes_stored = $4, bytes_reused = $5, restore_state = $6, plan = $7::jsonb
     WHERE id = $1
     RETURNING ${CHECKPOINT_COLUMNS}`,
    [
      checkpointId,
      manifest,
      JSON.stringify(input.cells.map(cellToJson)),
      input.blobs.reduce((sum, b) => sum + b.bytes, 0),
      reused.reduce((sum, r) => sum + r.bytes, 0),
      input.restoreOnNextStart ? 'pending' : 'none',
      input.plan === undefined ? null : JSON.stringify(input.plan),
    ],
  );
  const committed = toCheckpoint(rows[0]);
  if (input.retention !== undefined) await pruneSession(client, sessionId, input.retention, input.now ?? new Date());
  if (input.quotaBytes !== undefined) await checkQuota(client, sessionId, checkpointId, input.quotaBytes);
  return committed;
}

/**
 * Deletes the checkpoints of a session that retention no longer keeps: complete ones beyond the
 * newest `keepLast` or completed before `maxAgeS`, and failed ones older than the newest complete
 * one or than `maxAgeS`. Never the checkpoint the session's newest run was restored from or is
 * restoring (that run's history begins with its cells), never one still being written; a pending
 * restore only goes by age. The caller holds the session row.
 * @returns the deleted checkpoint ids.
 */
export async function pruneSession(client: pg.PoolClient, sessionId: string, policy: RetentionPolicy, now: Date): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    `WITH complete AS (
       SELECT id, completed_at, restore_state,
              row_number() OVER (ORDER BY completed_at DESC, id DESC) AS nth
       FROM checkpoint WHERE kernel_session_id = $1 AND state = 'complete'
     ),
     newest_run AS (
       SELECT restored_from_checkpoint_id AS id FROM kernel_run WHERE kernel_session_id = $1
       ORDER BY started_at DESC, id LIMIT 1
     ),
     doomed AS (
       SELECT id FROM complete
       WHERE restore_state <> 'claimed'
         AND (completed_at < $4::timestamptz - make_interval(secs => $3) OR (nth > $2 AND restore_state <> 'pending'))
       UNION ALL
       SELECT id FROM checkpoint
       WHERE kernel_session_id = $1 AND state = 'failed'
         AND (created_at < $4::timestamptz - make_interval(secs => $3)
              OR created_at < (SELECT max(completed_at) FROM complete))
     )
     DELETE FROM checkpoint c USING doomed d
     WHERE c.id = d.id AND NOT EXISTS (SELECT 1 FROM newest_run n WHERE n.id = c.id)
     RETURNING c.id`,
    [sessionId, Math.max(1, policy.keepLast), policy.maxAgeS, now],
  );
  return rows.map((r) => r.id);
}

/**
 * Refuses the commit (the transaction rolls back: the previous checkpoint stays) when the user's
 * checkpoints, this one in and retention applied, hold more than the quota.
 * @throws ResumeError RESUME_ERR_QUOTA_EXCEEDED (507).
 */
async function checkQuota(client: pg.PoolClient, sessionId: string, checkpointId: string, quotaBytes: number): Promise<void> {
  const { rows } = await client.query<{ user_name: string; notebook_path: string }>(
    'SELECT user_name, notebook_path FROM kernel_session WHERE id = $1',
    [sessionId],
  );
  const session = rows[0] as { user_name: string; notebook_path: string };
  const used = await usedBytes(client, session.user_name);
  if (used <= quotaBytes) return;
  throw new ResumeError(
    'RESUME_ERR_QUOTA_EXCEEDED',
    `Saving ${session.notebook_path} would bring your saved sessions to ${formatBytes(used)}, over your quota of ${formatBytes(quotaBytes)}; your previous checkpoint is kept.`,
    {
      status: 507,
      hint: 'Delete saved sessions you no longer need (DELETE api/checkpoints/<id>), or free memory in the kernel (del big variables you can rebuild), or ask your hub admin to raise RESUME_USER_QUOTA_MB.',
      context: { checkpointId, user: session.user_name, usedBytes: used, quotaBytes },
    },
  );
}

/** In the unit of RESUME_USER_QUOTA_MB (10⁶ bytes), so the message and the setting agree. */
function formatBytes(bytes: number): string {
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/**
 * Makes a complete checkpoint the session's pending restore, superseding any other pending one,
 * and clears its previous claim and report (runs restored from it keep their history).
 * @throws ResumeError RESUME_ERR_CHECKPOINT_NOT_FOUND, RESUME_ERR_CHECKPOINT_NOT_COMPLETE (409).
 */
export async function makeRestorePending(client: pg.PoolClient, checkpointId: string): Promise<Checkpoint> {
  const sessionId = await lockSessionOf(client, checkpointId);
  const locked = await client.query<{ state: string }>('SELECT state FROM checkpoint WHERE id = $1 FOR NO KEY UPDATE', [checkpointId]);
  const state = locked.rows[0]?.state ?? 'deleted';
  if (state !== 'complete') {
    throw new ResumeError('RESUME_ERR_CHECKPOINT_NOT_COMPLETE', `checkpoint ${checkpointId} is ${state}: only a complete checkpoint can be restored`, {
      status: 409,
      hint: 'Pick a complete checkpoint of the session (the list shows each one’s state).',
      context: { checkpointId, state },
    });
  }
  await client.query(
    "UPDATE checkpoint SET restore_state = 'none' WHERE kernel_session_id = $1 AND restore_state = 'pending' AND id <> $2",
    [sessionId, checkpointId],
  );
  const { rows } = await client.query(
    `UPDATE checkpoint SET restore_state = 'pending', restored_into_run_id = NULL, restore_report = NULL
     WHERE id = $1
     RETURNING ${CHECKPOINT_COLUMNS}`,
    [checkpointId],
  );
  return toCheckpoint(rows[0]);
}

/**
 * Hands the session's pending restore to one run (`pending` → `claimed`) and records it as the
 * checkpoint the run was restored from. A retry by the run that already claimed it gets the same
 * checkpoint again.
 * @returns the claimed checkpoint, or null when none is pending (or another run was first).
 * @throws ResumeError RESUME_ERR_RUN_NOT_FOUND when the run is not a run of that session.
 */
export async function claimRestore(client: pg.PoolClient, sessionId: string, runId: string): Promise<Checkpoint | null> {
  const run = await client.query<{ restored_from_checkpoint_id: string | null }>(
    'SELECT restored_from_checkpoint_id FROM kernel_run WHERE id = $1 AND kernel_session_id = $2 FOR NO KEY UPDATE',
    [runId, sessionId],
  );
  if (run.rows[0] === undefined) throw runNotFound(runId);
  const already = run.rows[0].restored_from_checkpoint_id;
  if (already !== null) {
    const { rows } = await client.query(
      `SELECT ${CHECKPOINT_COLUMNS} FROM checkpoint WHERE id = $1 AND restored_into_run_id = $2 AND restore_state = 'claimed'`,
      [already, runId],
    );
    return rows[0] === undefined ? null : toCheckpoint(rows[0]);
  }
  // Atomic: of two runs claiming at once, the second waits for the first's commit, re-checks the
  // row and finds it no longer pending.
  const claimed = await client.query(
    `UPDATE checkpoint SET restore_state = 'claimed', restored_into_run_id = $2
     WHERE kernel_session_id = $1 AND restore_state = 'pending'
     RETURNING ${CHECKPOINT_COLUMNS}`,
    [sessionId, runId],
  );
  if (claimed.rows[0] === undefined) return null;
  const checkpoint = toCheckpoint(claimed.rows[0]);
  await client.query('UPDATE kernel_run SET restored_from_checkpoint_id = $2 WHERE id = $1', [runId, checkpoint.id]);
  return checkpoint;
}

/**
 * Records a restore's outcome. Only a run restored from this checkpoint may report, and not over
 * another run's claim.
 * @throws ResumeError RESUME_ERR_CHECKPOINT_NOT_FOUND, RESUME_ERR_RESTORE_NOT_CLAIMED (409).
 */
export async function recordRestoreOutcome(
  client: pg.PoolClient,
  input: { checkpointId: string; runId: string; ok: boolean; report: unknown },
): Promise<void> {
  const { checkpointId, runId } = input;
  const updated = await client.query(
    `UPDATE checkpoint c SET restore_state = $3, restore_report = $4::jsonb, restored_into_run_id = $2
     WHERE c.id = $1 AND c.state = 'complete'
       AND (c.restored_into_run_id IS NULL OR c.restored_into_run_id = $2)
       AND EXISTS (SELECT 1 FROM kernel_run r WHERE r.id = $2 AND r.restored_from_checkpoint_id = c.id)`,
    [checkpointId, runId, input.ok ? 'restored' : 'failed', JSON.stringify(input.report ?? null)],
  );
  if (updated.rowCount === 1) return;
  const { rowCount } = await client.query('SELECT 1 FROM checkpoint WHERE id = $1', [checkpointId]);
  if (rowCount === 0) throw checkpointNotFound(checkpointId);
  throw new ResumeError('RESUME_ERR_RESTORE_NOT_CLAIMED', `run ${runId} did not restore checkpoint ${checkpointId}`, {
    status: 409,
    hint: 'Report a restore from the run that claimed it (see claimPendingRestore).',
    context: { checkpointId, runId },
  });
}

/** Locks the session row of a checkpoint (first in the lock order) and returns the session id. */
async function lockSessionOf(client: pg.PoolClient, checkpointId: string): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `SELECT s.id FROM kernel_session s JOIN checkpoint c ON c.kernel_session_id = s.id
     WHERE c.id = $1 FOR NO KEY UPDATE OF s`,
    [checkpointId],
  );
  if (rows[0] === undefined) throw checkpointNotFound(checkpointId);
  return rows[0].id;
}

/**
 * What is wrong with the blobs a commit expects: keys listed twice, written ones missing or
 * different. `referenced` keys are checked by `reuseProblems` instead (nothing is written under them).
 */
function blobProblems(
  expected: ExpectedBlob[],
  stored: Map<string, { bytes: number; sha256: string }>,
  referenced: ReadonlySet<string>,
): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const want of expected) {
    if (seen.has(want.key)) problems.push(`blob ${want.key} is listed twice`);
    seen.add(want.key);
    if (referenced.has(want.key)) continue;
    const have = stored.get(want.key);
    if (have === undefined) problems.push(`blob ${want.key} is missing`);
    else if (have.bytes !== want.bytes) problems.push(`blob ${want.key} has ${have.bytes} bytes, expected ${want.bytes}`);
    else if (have.sha256 !== want.sha256.toLowerCase()) problems.push(`blob ${want.key} has a different sha256`);
  }
  return problems;
}

/**
 * What is wrong with the blobs a commit reuses: the session must hold each one's bytes, with the
 * promised size and checksum.
 */
async function reuseProblems(client: pg.PoolClient, sessionId: string, reused: ExpectedBlob[]): Promise<string[]> {
  if (reused.length === 0) return [];
  const { rows } = await client.query<{ key: string; bytes: string | null }>(
    `SELECT r.key, sb.bytes FROM unnest($2::text[], $3::text[]) AS r(key, sha256)
     LEFT JOIN session_blob sb ON sb.kernel_session_id = $1 AND sb.sha256 = r.sha256`,
    [sessionId, reused.map((r) => r.key), reused.map((r) => r.sha256.toLowerCase())],
  );
  const found = new Map(rows.map((row) => [row.key, row.bytes]));
  const problems: string[] = [];
  for (const r of reused) {
    const bytes = found.get(r.key);
    if (bytes === undefined || bytes === null) problems.push(`blob ${r.key} reuses content this session does not hold (sha256 ${r.sha256.slice(0, 12)}…)`);
    else if (Number(bytes) !== r.bytes) problems.push(`blob ${r.key} reuses content of ${bytes} bytes, the manifest says ${r.bytes}`);
  }
  return problems;
}

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
import type { Checkpoint, CommitCheckpointInput, ExpectedBlob, ReusedBlob } from '../checkpoint-store.js';
import { CHECKPOINT_COLUMNS, cellToJson, isUuid, toCheckpoint, toStoredBlob } from './row-schemas.js';
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
    await client.query('SELECT key, bytes, sha256 FROM blob WHERE checkpoint_id = $1 AND complete', [checkpointId])
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
    await client.query(
      `INSERT INTO blob_reference (checkpoint_id, key, stored_in_checkpoint_id, stored_key)
       SELECT $1, r.key, r.stored_in, r.stored_key FROM unnest($2::text[], $3::uuid[], $4::text[]) AS r(key, stored_in, stored_key)`,
      [checkpointId, reused.map((r) => r.key), reused.map((r) => r.storedIn.checkpointId), reused.map((r) => r.storedIn.key)],
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
      stored.reduce((sum, b) => sum + b.bytes, 0),
      reused.reduce((sum, r) => sum + r.bytes, 0),
      input.restoreOnNextStart ? 'pending' : 'none',
      input.plan === undefined ? null : JSON.stringify(input.plan),
    ],
  );
  return toCheckpoint(rows[0]);
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

/** What is wrong with the stored blobs against the expected ones, one line per problem. */
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
 * What is wrong with the blobs a commit reuses: each must be a complete blob, with the promised
 * size and checksum, of a complete checkpoint of the same session, and not itself a reference.
 * The insert into blob_reference then locks those checkpoint rows (its foreign key) until commit.
 */
async function reuseProblems(client: pg.PoolClient, sessionId: string, reused: ReusedBlob[]): Promise<string[]> {
  const problems: string[] = [];
  const candidates = reused.filter((r) => {
    if (isUuid(r.storedIn.checkpointId)) return true;
    problems.push(`blob ${r.key} refers to ${JSON.stringify(r.storedIn.checkpointId)}, which is not a checkpoint id`);
    return false;
  });
  if (candidates.length === 0) return problems;
  const { rows } = await client.query<{ key: string; found: boolean; bytes: string | null; sha256: string | null }>(
    `SELECT r.key, c.id IS NOT NULL AS found, b.bytes, b.sha256
     FROM unnest($2::text[], $3::uuid[], $4::text[]) AS r(key, stored_in, stored_key)
     LEFT JOIN checkpoint c ON c.id = r.stored_in AND c.kernel_session_id = $1 AND c.state = 'complete'
     LEFT JOIN blob b ON b.checkpoint_id = c.id AND b.key = r.stored_key AND b.complete`,
    [sessionId, candidates.map((r) => r.key), candidates.map((r) => r.storedIn.checkpointId), candidates.map((r) => r.storedIn.key)],
  );
  const found = new Map(rows.map((row) => [row.key, row]));
  for (const r of candidates) {
    const row = found.get(r.key);
    const where = `blob ${r.storedIn.key} of checkpoint ${r.storedIn.checkpointId}`;
    if (row === undefined || !row.found) problems.push(`blob ${r.key} refers to ${where}, which is not a complete checkpoint of this session`);
    else if (row.bytes === null || row.sha256 === null) problems.push(`blob ${r.key} refers to ${where}, which does not exist`);
    else if (Number(row.bytes) !== r.bytes || row.sha256 !== r.sha256.toLowerCase()) {
      problems.push(`blob ${r.key} refers to ${where}, whose size or sha256 differ from the manifest's`);
    }
  }
  return problems;
}

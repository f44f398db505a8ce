/**
 * CheckpointStore in Postgres: kernel sessions, runs, cell history and checkpoints
 * (tables of migrations/0001_create_history.sql and 0002_create_checkpoints.sql).
 *
 * Timestamps come from the database clock, so several service replicas agree on "latest".
 */
import type pg from 'pg';
import { ResumeError, type ErrorContext } from '../../errors.js';
import type { Logger } from '../../log.js';
import type {
  CellRecord,
  Checkpoint,
  CheckpointStore,
  CheckpointSummary,
  CheckpointTrigger,
  CommitCheckpointInput,
  KernelRun,
  KernelSession,
  RetentionPolicy,
  SessionKey,
} from '../checkpoint-store.js';
import { claimRestore, commitCheckpointRow, makeRestorePending, pruneSession, recordRestoreOutcome } from './checkpoint-transitions.js';
import { mapPgError, sqlState } from './map-pg-error.js';
import { withClient, withTransaction } from './pool.js';
import {
  CHECKPOINT_COLUMNS,
  cellToJson,
  isUuid,
  toCellRecord,
  toCheckpoint,
  toCheckpointSummary,
  toKernelRun,
  toKernelSession,
} from './row-schemas.js';
import { checkpointNotFound, runNotFound, sessionNotFound } from './store-errors.js';

export type PgCheckpointStoreOptions = { logger?: Logger };

const CELL_COLUMNS =
  'seq, execution_count, code, started_at, duration_s, status, error, created, deleted, rebound, ' +
  'read, read_all, modified, groups, group_costs, effects_known, timing_known, cell_id';

/** A checkpoint's own columns but the big ones (manifest, cells, plan), and its session's key. */
const CHECKPOINT_SUMMARY_COLUMNS = `c.id, c.kernel_session_id, c.kernel_run_id, c.state, c.trigger, c.created_at, c.completed_at,
  c.bytes_stored, c.bytes_reused, c.error, c.restore_state, c.restored_into_run_id, c.restore_report,
  s.user_name, s.server_name, s.notebook_path, s.kernel_name`;
const CHECKPOINT_WITH_SESSION = 'FROM checkpoint c JOIN kernel_session s ON s.id = c.kernel_session_id';

/** Postgres implementation of CheckpointStore. */
export class PgCheckpointStore implements CheckpointStore {
  private readonly pool: pg.Pool;
  private readonly logger: Logger | undefined;

  /**
   * @param pool a pool on a database migrated with `migrate()`.
   * @param options.logger logs commits at info level.
   */
  constructor(pool: pg.Pool, options: PgCheckpointStoreOptions = {}) {
    this.pool = pool;
    this.logger = options.logger;
  }

  /** Finds or creates the session of a key (safe when two kernels of one notebook register at once). */
  async upsertSession(key: SessionKey): Promise<KernelSession> {
    const values = [key.user, key.server, key.notebookPath, key.kernelName];
    return this.run({ user: key.user, server: key.server }, async (client) => {
      const inserted = await client.query(
        `INSERT INTO kernel_session (user_name, server_name, notebook_path, kernel_name) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_name, server_name, notebook_path, kernel_name) DO NOTHING
         RETURNING id, user_name, server_name, notebook_path, kernel_name, created_at`,
        values,
      );
      if (inserted.rows[0] !== undefined) return toKernelSession(inserted.rows[0]);
      // A separate statement: its snapshot sees the row a concurrent insert just committed.
      const found = await client.query(
        `SELECT id, user_name, server_name, notebook_path, kernel_name, created_at FROM kernel_session
         WHERE user_name = $1 AND server_name = $2 AND notebook_path = $3 AND kernel_name = $4`,
        values,
      );
      return toKernelSession(found.rows[0]);
    });
  }

  /** The session with this id, or null. */
  async getSession(id: string): Promise<KernelSession | null> {
    if (!isUuid(id)) return null;
    return this.run({}, async (client) => {
      const { rows } = await client.query(
        'SELECT id, user_name, server_name, notebook_path, kernel_name, created_at FROM kernel_session WHERE id = $1',
        [id],
      );
      return rows[0] === undefined ? null : toKernelSession(rows[0]);
    });
  }

  /**
   * Registers a kernel run of a session.
   * @throws ResumeError RESUME_ERR_SESSION_NOT_FOUND; RESUME_ERR_CHECKPOINT_NOT_FOUND when
   *   `restoredFromCheckpointId` is not a complete checkpoint of that session.
   */
  async createRun(run: Omit<KernelRun, 'id' | 'startedAt'> & { startedAt?: Date }): Promise<KernelRun> {
    if (!isUuid(run.sessionId)) throw sessionNotFound(run.sessionId);
    const from = run.restoredFromCheckpointId;
    if (from !== null && !isUuid(from)) throw checkpointNotFound(from);
    return this.run({ kernelId: run.kernelId }, async (client) => {
      let rows: unknown[];
      try {
        ({ rows } = await client.query(
          `INSERT INTO kernel_run (kernel_session_id, kernel_id, server_url, agent_version, started_at, restored_from_checkpoint_id, reports_end)
           SELECT $1, $2, $3, $4, coalesce($5::timestamptz, now()), $6::uuid, $7
           WHERE $6::uuid IS NULL
              OR EXISTS (SELECT 1 FROM checkpoint WHERE id = $6::uuid AND kernel_session_id = $1 AND state = 'complete')
           RETURNING *`,
          [run.sessionId, run.kernelId, run.serverUrl, run.agentVersion, run.startedAt ?? null, from, run.reportsEnd ?? false],
        ));
      } catch (err) {
        if (sqlState(err) === '23503') throw sessionNotFound(run.sessionId);
        throw err;
      }
      if (rows[0] === undefined) throw checkpointNotFound(from ?? '');
      return toKernelRun(rows[0]);
    });
  }

  /** The run with this id, or null. */
  async getRun(id: string): Promise<KernelRun | null> {
    if (!isUuid(id)) return null;
    return this.run({ runId: id }, async (client) => {
      const { rows } = await client.query('SELECT * FROM kernel_run WHERE id = $1', [id]);
      return rows[0] === undefined ? null : toKernelRun(rows[0]);
    });
  }

  async endRun(id: string): Promise<void> {
    if (!isUuid(id)) throw runNotFound(id);
    await this.run({ runId: id }, async (client) => {
      const { rowCount } = await client.query('UPDATE kernel_run SET ended_at = coalesce(ended_at, now()) WHERE id = $1', [id]);
      if (rowCount === 0) throw runNotFound(id);
    });
  }

  async previousRun(sessionId: string, runId: string): Promise<KernelRun | null> {
    if (!isUuid(sessionId) || !isUuid(runId)) return null;
    return this.run({ runId }, async (client) => {
      const { rows } = await client.query(
        `SELECT p.* FROM kernel_run r JOIN kernel_run p ON p.kernel_session_id = r.kernel_session_id
         WHERE r.id = $2 AND r.kernel_session_id = $1 AND p.id <> r.id AND (p.started_at, p.id) < (r.started_at, r.id)
         ORDER BY p.started_at DESC, p.id DESC LIMIT 1`,
        [sessionId, runId],
      );
      return rows[0] === undefined ? null : toKernelRun(rows[0]);
    });
  }

  /** Runs of one server (all its notebooks), newest first, each with its session. */
  async listSessions(filter: { user?: string; id?: string }): Promise<Array<KernelSession & { latestRun: KernelRun | null }>> {
    if (filter.id !== undefined && !isUuid(filter.id)) return [];
    return this.run({ ...(filter.user === undefined ? {} : { user: filter.user }) }, async (client) => {
      // The newest run of each session, if any, beside the session's own columns.
      const { rows } = await client.query<Record<string, unknown>>(
        `SELECT s.id AS session_id, s.user_name, s.server_name, s.notebook_path, s.kernel_name,
                s.created_at AS session_created_at, r.*
         FROM kernel_session s
         LEFT JOIN LATERAL (
           SELECT * FROM kernel_run WHERE kernel_session_id = s.id ORDER BY started_at DESC, id LIMIT 1
         ) r ON true
         WHERE ($1::text IS NULL OR s.user_name = $1) AND ($2::uuid IS NULL OR s.id = $2)
         ORDER BY coalesce(r.started_at, s.created_at) DESC, s.id`,
        [filter.user ?? null, filter.id ?? null],
      );
      return rows.map((row) => ({
        ...toKernelSession({ ...row, id: row['session_id'], created_at: row['session_created_at'] }),
        latestRun: row['id'] === null ? null : toKernelRun({ ...row, kernel_session_id: row['session_id'] }),
      }));
    });
  }

  async listRunsForServer(user: string, server: string): Promise<Array<KernelRun & { session: KernelSession }>> {
    return this.run({ user, server }, async (client) => {
      const { rows } = await client.query<Record<string, unknown>>(
        `SELECT r.*, s.user_name, s.server_name, s.notebook_path, s.kernel_name, s.created_at AS session_created_at
         FROM kernel_run r JOIN kernel_session s ON s.id = r.kernel_session_id
         WHERE s.user_name = $1 AND s.server_name = $2
         ORDER BY r.started_at DESC, r.id`,
        [user, server],
      );
      return rows.map((row) => ({
        ...toKernelRun(row),
        session: toKernelSession({ ...row, id: row['kernel_session_id'], created_at: row['session_created_at'] }),
      }));
    });
  }

  async runsIdleSince(idleSince: Date): Promise<Array<KernelRun & { session: KernelSession; lastCellAt: Date }>> {
    return this.run({}, async (client) => {
      const { rows } = await client.query<Record<string, unknown>>(
        `SELECT r.*, s.user_name, s.server_name, s.notebook_path, s.kernel_name, s.created_at AS session_created_at,
                c.last_cell
         FROM kernel_session s
         JOIN LATERAL (SELECT * FROM kernel_run WHERE kernel_session_id = s.id ORDER BY started_at DESC, id LIMIT 1) r ON true
         -- The newest record by seq (an index lookup, not a scan of the run's cells) arrived last.
         JOIN LATERAL (SELECT recorded_at AS last_cell FROM cell_execution WHERE kernel_run_id = r.id ORDER BY seq DESC LIMIT 1) c ON true
         WHERE c.last_cell < $1 AND r.ended_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM checkpoint k WHERE k.kernel_session_id = s.id AND k.created_at >= c.last_cell)
         ORDER BY c.last_cell`,
        [idleSince],
      );
      return rows.map((row) => ({
        ...toKernelRun(row),
        session: toKernelSession({ ...row, id: row['kernel_session_id'], created_at: row['session_created_at'] }),
        lastCellAt: row['last_cell'] as Date,
      }));
    });
  }

  /**
   * Appends cell records in one statement; a `seq` already stored for the run is left as it was.
   * @throws ResumeError RESUME_ERR_RUN_NOT_FOUND
   */
  async appendCells(runId: string, cells: CellRecord[]): Promise<void> {
    if (!isUuid(runId)) throw runNotFound(runId);
    if (cells.length === 0) return;
    await this.run({ runId }, async (client) => {
      try {
        await client.query(
          `INSERT INTO cell_execution (kernel_run_id, ${CELL_COLUMNS})
           SELECT $1, ${CELL_COLUMNS}
           FROM jsonb_to_recordset($2::jsonb) AS c(seq integer, execution_count integer, code text, started_at timestamptz,
             duration_s double precision, status text, error jsonb, created text[], deleted text[], rebound text[],
             read text[], read_all boolean, modified text[], groups jsonb, group_costs jsonb, effects_known boolean,
             timing_known boolean, cell_id text)
           ON CONFLICT (kernel_run_id, seq) DO NOTHING`,
          [runId, JSON.stringify(cells.map(cellToJson))],
        );
      } catch (err) {
        if (sqlState(err) === '23503') throw runNotFound(runId);
        throw err;
      }
    });
  }

  /**
   * The whole history of a run: the cells of the checkpoint it was restored from (which already
   * hold the history before that one), then its own cells by seq.
   * @throws ResumeError RESUME_ERR_RUN_NOT_FOUND
   */
  async historyOfRun(runId: string): Promise<CellRecord[]> {
    if (!isUuid(runId)) throw runNotFound(runId);
    // One snapshot for both reads, so a restore committing in between cannot interleave.
    return this.transaction({ runId }, async (client) => {
      const run = await client.query<{ cells: unknown }>(
        `SELECT c.id, c.kernel_session_id, c.kernel_run_id, c.state, c.trigger, c.created_at, c.completed_at, c.manifest,
                c.cells, c.plan, c.bytes_stored, c.bytes_reused, c.error, c.restore_state, c.restored_into_run_id, c.restore_report,
                r.restored_from_checkpoint_id IS NOT NULL AS restored
         FROM kernel_run r LEFT JOIN checkpoint c ON c.id = r.restored_from_checkpoint_id
         WHERE r.id = $1`,
        [runId],
      );
      const head = run.rows[0] as (Record<string, unknown> & { restored: boolean }) | undefined;
      if (head === undefined) throw runNotFound(runId);
      const inherited = head.restored ? toCheckpoint(head).cells : [];
      const own = await client.query(`SELECT ${CELL_COLUMNS} FROM cell_execution WHERE kernel_run_id = $1 ORDER BY seq`, [runId]);
      return [...inherited, ...own.rows.map(toCellRecord)];
    }, 'repeatable read');
  }

  /**
   * Starts a checkpoint of a run (state `writing`).
   * @throws ResumeError RESUME_ERR_RUN_NOT_FOUND when the run is not a run of that session.
   */
  async createCheckpoint(input: { sessionId: string; runId: string; trigger: CheckpointTrigger }): Promise<Checkpoint> {
    if (!isUuid(input.sessionId) || !isUuid(input.runId)) throw runNotFound(input.runId);
    return this.run({ runId: input.runId }, async (client) => {
      const { rows } = await client.query(
        `INSERT INTO checkpoint (kernel_session_id, kernel_run_id, trigger)
         SELECT kernel_session_id, id, $3 FROM kernel_run WHERE id = $2 AND kernel_session_id = $1
         RETURNING ${CHECKPOINT_COLUMNS}`,
        [input.sessionId, input.runId, input.trigger],
      );
      if (rows[0] === undefined) throw runNotFound(input.runId);
      return toCheckpoint(rows[0]);
    });
  }

  /**
   * Verifies every expected blob and makes the checkpoint complete, in one transaction.
   * Committing again with the same manifest returns the complete checkpoint (a retry after a lost reply).
   * @throws ResumeError RESUME_ERR_CHECKPOINT_BLOB_MISMATCH (409, nothing changed),
   *   RESUME_ERR_CHECKPOINT_NOT_FOUND (404), RESUME_ERR_CHECKPOINT_NOT_WRITING (409).
   */
  async commitCheckpoint(input: CommitCheckpointInput): Promise<Checkpoint> {
    const { checkpointId } = input;
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    if (input.manifest === undefined || input.manifest === null) {
      throw new ResumeError('RESUME_ERR_CHECKPOINT_MANIFEST_MISSING', 'a checkpoint cannot be committed without its manifest', {
        status: 400,
        hint: 'Pass the manifest the agent returned for this checkpoint.',
        context: { checkpointId },
      });
    }
    const checkpoint = await this.transaction({ checkpointId }, (client) => commitCheckpointRow(client, input));
    if (checkpoint === null) return (await this.getCheckpoint(checkpointId)) as Checkpoint;
    this.logger?.info(
      { checkpointId, sessionId: checkpoint.sessionId, bytes: checkpoint.bytesStored, blobs: input.blobs.length },
      'checkpoint committed',
    );
    return checkpoint;
  }

  /** Marks a `writing` checkpoint failed; a complete (or already failed) one is left as it is. */
  async failCheckpoint(checkpointId: string, error: string): Promise<void> {
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    await this.transaction({ checkpointId }, async (client) => {
      const updated = await client.query(
        "UPDATE checkpoint SET state = 'failed', error = $2 WHERE id = $1 AND state = 'writing'",
        [checkpointId, error],
      );
      if (updated.rowCount === 1) await client.query('DELETE FROM checkpoint_blob WHERE checkpoint_id = $1', [checkpointId]);
      if (updated.rowCount === 0) {
        const { rowCount } = await client.query('SELECT 1 FROM checkpoint WHERE id = $1', [checkpointId]);
        if (rowCount === 0) throw checkpointNotFound(checkpointId);
      }
    });
  }

  /** The checkpoint with this id (any state), or null. */
  async getCheckpoint(id: string): Promise<Checkpoint | null> {
    if (!isUuid(id)) return null;
    return this.run({ checkpointId: id }, async (client) => {
      const { rows } = await client.query(`SELECT ${CHECKPOINT_COLUMNS} FROM checkpoint WHERE id = $1`, [id]);
      return rows[0] === undefined ? null : toCheckpoint(rows[0]);
    });
  }

  /** The session's most recently committed checkpoint, or null. Failed and writing ones never count. */
  async latestCompleteCheckpoint(sessionId: string): Promise<Checkpoint | null> {
    if (!isUuid(sessionId)) return null;
    return this.run({}, async (client) => {
      const { rows } = await client.query(
        `SELECT ${CHECKPOINT_COLUMNS} FROM checkpoint
         WHERE kernel_session_id = $1 AND state = 'complete'
         ORDER BY completed_at DESC, id DESC LIMIT 1`,
        [sessionId],
      );
      return rows[0] === undefined ? null : toCheckpoint(rows[0]);
    });
  }

  async getCheckpointSummary(id: string): Promise<CheckpointSummary | null> {
    if (!isUuid(id)) return null;
    return this.run({ checkpointId: id }, async (client) => {
      const { rows } = await client.query(`SELECT ${CHECKPOINT_SUMMARY_COLUMNS} ${CHECKPOINT_WITH_SESSION} WHERE c.id = $1`, [id]);
      return rows[0] === undefined ? null : toCheckpointSummary(rows[0]);
    });
  }

  /** Checkpoints (any state) with their session keys, newest first; only `user`'s when given. */
  async listCheckpoints(filter: { user?: string }): Promise<CheckpointSummary[]> {
    return this.run({ user: filter.user }, async (client) => {
      const { rows } = await client.query(
        `SELECT ${CHECKPOINT_SUMMARY_COLUMNS} ${CHECKPOINT_WITH_SESSION}
         WHERE $1::text IS NULL OR s.user_name = $1
         ORDER BY c.created_at DESC, c.id`,
        [filter.user ?? null],
      );
      return rows.map(toCheckpointSummary);
    });
  }

  /**
   * Hands the session's pending restore to one run (`pending` → `claimed`) and records it as the
   * checkpoint the run was restored from, so the run's history starts with its cells. A retry by
   * the run that already claimed it gets the same checkpoint again; anyone else gets null.
   * @throws ResumeError RESUME_ERR_RUN_NOT_FOUND when the run is not a run of that session.
   */
  async claimPendingRestore(sessionId: string, runId: string): Promise<Checkpoint | null> {
    if (!isUuid(sessionId) || !isUuid(runId)) throw runNotFound(runId);
    return this.transaction({ runId }, (client) => claimRestore(client, sessionId, runId));
  }

  /**
   * Records how a restore went (`restored` or `failed`, with the agent's report). Only a run
   * restored from this checkpoint may report, and not over another run's claim.
   * @throws ResumeError RESUME_ERR_CHECKPOINT_NOT_FOUND, RESUME_ERR_RESTORE_NOT_CLAIMED (409).
   */
  async recordRestoreReport(checkpointId: string, runId: string, ok: boolean, report: unknown): Promise<void> {
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    if (!isUuid(runId)) throw runNotFound(runId);
    await this.run({ checkpointId, runId }, (client) => recordRestoreOutcome(client, { checkpointId, runId, ok, report }));
  }

  /**
   * Makes a complete checkpoint the session's pending restore again (a user asked to resume it);
   * any other pending checkpoint of the session is superseded (`none`). The previous claim and
   * report of this checkpoint are cleared; runs restored from it keep their history.
   * @throws ResumeError RESUME_ERR_CHECKPOINT_NOT_FOUND (404), RESUME_ERR_CHECKPOINT_NOT_COMPLETE (409).
   */
  async requestRestore(checkpointId: string): Promise<Checkpoint> {
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    return this.transaction({ checkpointId }, (client) => makeRestorePending(client, checkpointId));
  }

  /**
   * Deletes a checkpoint; its blobs become garbage unless another checkpoint lists them.
   * @throws ResumeError RESUME_ERR_CHECKPOINT_NOT_FOUND (404), RESUME_ERR_CHECKPOINT_IN_USE (409).
   */
  async deleteCheckpoint(checkpointId: string): Promise<void> {
    if (!isUuid(checkpointId)) throw checkpointNotFound(checkpointId);
    await this.transaction({ checkpointId }, async (client) => {
      const { rows } = await client.query<{ state: string; restore_state: string; newest_run_restored_from: string | null }>(
        `SELECT c.state, c.restore_state,
                (SELECT r.restored_from_checkpoint_id FROM kernel_run r WHERE r.kernel_session_id = s.id
                 ORDER BY r.started_at DESC, r.id LIMIT 1) AS newest_run_restored_from
         FROM checkpoint c JOIN kernel_session s ON s.id = c.kernel_session_id
         WHERE c.id = $1 FOR NO KEY UPDATE OF s`,
        [checkpointId],
      );
      const row = rows[0];
      if (row === undefined) throw checkpointNotFound(checkpointId);
      const inUse =
        row.state === 'writing'
          ? 'it is still being written'
          : row.restore_state === 'claimed' || row.newest_run_restored_from === checkpointId
            ? 'the notebook’s running kernel was restored from it (its history begins there)'
            : null;
      if (inUse !== null) {
        throw new ResumeError('RESUME_ERR_CHECKPOINT_IN_USE', `Checkpoint ${checkpointId} cannot be deleted: ${inUse}.`, {
          status: 409,
          hint: 'Wait for a checkpoint that is still being written to finish; the one the running kernel began from can be deleted once the notebook has started another kernel.',
          context: { checkpointId },
        });
      }
      await client.query('DELETE FROM checkpoint WHERE id = $1', [checkpointId]);
    });
    this.logger?.info({ checkpointId }, 'checkpoint deleted');
  }

  /** Applies retention to every session that has more than one checkpoint or old ones, a session per transaction. */
  async pruneCheckpoints(policy: RetentionPolicy, now: Date = new Date()): Promise<string[]> {
    const sessions = await this.run({}, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT kernel_session_id AS id FROM checkpoint WHERE state <> 'writing'
         GROUP BY kernel_session_id
         HAVING count(*) FILTER (WHERE state = 'complete') > $1 OR count(*) FILTER (WHERE state = 'failed') > 0
             OR min(coalesce(completed_at, created_at)) < $3::timestamptz - make_interval(secs => $2)`,
        [Math.max(1, policy.keepLast), policy.maxAgeS, now],
      );
      return rows.map((r) => r.id);
    });
    const deleted: string[] = [];
    for (const sessionId of sessions) {
      deleted.push(
        ...(await this.transaction({ sessionId }, async (client) => {
          // Lock order: the session row first, as commits take it.
          await client.query('SELECT 1 FROM kernel_session WHERE id = $1 FOR NO KEY UPDATE', [sessionId]);
          return pruneSession(client, sessionId, policy, now);
        })),
      );
    }
    if (deleted.length > 0) this.logger?.info({ checkpoints: deleted.length }, 'old checkpoints deleted by retention');
    return deleted;
  }

  async failAbandonedCheckpoints(startedBefore: Date): Promise<string[]> {
    return this.run({}, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `UPDATE checkpoint SET state = 'failed', error = 'abandoned: its writer stopped before committing (a service restart or crash)'
         WHERE state = 'writing' AND created_at < $1
         RETURNING id`,
        [startedBefore],
      );
      await client.query('DELETE FROM checkpoint_blob WHERE checkpoint_id = ANY($1::uuid[])', [rows.map((r) => r.id)]);
      return rows.map((r) => r.id);
    });
  }

  private async run<T>(context: ErrorContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    try {
      return await withClient(this.pool, work);
    } catch (err) {
      throw mapPgError(err, context);
    }
  }

  private async transaction<T>(
    context: ErrorContext,
    work: (client: pg.PoolClient) => Promise<T>,
    isolation?: 'repeatable read',
  ): Promise<T> {
    try {
      return await withTransaction(this.pool, work, isolation === undefined ? {} : { isolation });
    } catch (err) {
      throw mapPgError(err, context);
    }
  }
}

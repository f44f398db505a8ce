import { performance } from 'node:perf_hooks';
import type { AgentClient } from '../agent/agent-client.js';
import { manifestSchema, type CheckpointBase, type Manifest } from '../agent/agent-messages.js';
import { ResumeError, isResumeError } from '../errors.js';
import { toCellRecord } from '../history/cell-record.js';
import { HistoryGraph } from '../history/index.js';
import type { Logger } from '../log.js';
import { DEFAULT_UNKNOWN_RUNTIME_S } from '../planner/cost-model.js';
import { planReplication, type PlanStrategy, type ReplicationPlan } from '../planner/replication-planner.js';
import type { StoreBandwidth } from '../planner/store-bandwidth.js';
import type {
  CellRecord,
  Checkpoint,
  CheckpointStore,
  CheckpointTrigger,
  CommitCheckpointInput,
  KernelRun,
  KernelSession,
  RetentionPolicy,
} from '../store/checkpoint-store.js';
import type { BlobGrants } from '../web/auth/blob-grants.js';
import type { ServiceMetrics } from '../web/service-metrics.js';

export type CheckpointRunnerOptions = {
  store: CheckpointStore;
  grants: BlobGrants;
  /** Service root as user servers reach it (with trailing slash): blob URLs are built on it. */
  agentUrl: string;
  timeoutMs: number;
  /** How checkpoints choose what to store (RESUME_PLAN, RESUME_PLAN_ALPHA, the measured bandwidth). */
  planning: { strategy: PlanStrategy; alpha: number; bandwidth: StoreBandwidth };
  /** Applied to the session as each checkpoint commits (RESUME_KEEP_CHECKPOINTS, RESUME_KEEP_DAYS). */
  retention?: RetentionPolicy;
  /** Bytes one user's checkpoints may hold (RESUME_USER_QUOTA_MB); none when absent. */
  quotaBytes?: number;
  /** The service clock (retention ages by it; tests travel in time). */
  now?: () => Date;
  metrics: ServiceMetrics;
  logger: Logger;
};

/** Checkpoints taken because the server is going away: the next kernel of the session restores them. */
const SERVER_LEAVING: ReadonlySet<CheckpointTrigger> = new Set(['cull', 'prestop']);

/**
 * Takes one checkpoint of one kernel: record → tell the agent to write its groups under a grant
 * → check every blob → commit, all or nothing.
 *
 * #### Notes
 * The checkpoint row exists from the start (state `writing`) so blobs have somewhere to belong,
 * but nothing reads a checkpoint before the commit transaction has verified every blob against the
 * manifest; a failure at any step marks it `failed` and removes its blobs, and the session's last
 * complete checkpoint stays exactly as it was (DESIGN invariant 1).
 */
export class CheckpointRunner {
  private readonly o: CheckpointRunnerOptions;

  constructor(options: CheckpointRunnerOptions) {
    this.o = options;
  }

  /**
   * @param target the session and kernel run to save.
   * @param agent a client for that kernel's agent.
   * @param trigger why: a `cull` or `prestop` checkpoint becomes the session's pending restore.
   * @param options.cellTags the notebook's cell tags by cell id (a kernel never sees them): the
   *   plan honours `never-rerun` and `always-store` tags as it honours `# resume:` comments.
   * @throws ResumeError RESUME_ERR_CHECKPOINT_FAILED (with the cause) when any step fails.
   */
  async checkpoint(
    target: { session: KernelSession; run: KernelRun },
    agent: AgentClient,
    trigger: CheckpointTrigger,
    options: { cellTags?: ReadonlyMap<string, readonly string[]> } = {},
  ): Promise<Checkpoint> {
    const { store, grants, metrics, logger } = this.o;
    const { session, run } = target;
    const started = performance.now();
    const checkpoint = await store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger });
    const context = {
      user: session.user,
      server: session.server,
      kernelId: run.kernelId,
      runId: run.id,
      checkpointId: checkpoint.id,
    };
    logger.info({ ...context, notebook: session.notebookPath, trigger }, 'checkpoint started');
    try {
      // The grant must outlive the slowest checkpoint we are willing to wait for.
      const grant = grants.issue(
        { user: session.user, runId: run.id, checkpointId: checkpoint.id, action: 'upload' },
        { minTtlS: this.o.timeoutMs / 1000 + 60 },
      );
      const base = await this.baseFor(session.id);
      // Planned on the history as it is now; the commit below asks again, since a cell the user
      // ran meanwhile is in the checkpoint and must be in its history too.
      const plan = this.plan((await agent.history()).map(toCellRecord), options.cellTags, context);
      const recompute = plan?.groups.filter((g) => g.decision === 'recompute').flatMap((g) => g.names) ?? [];
      const manifest = await agent.checkpoint(
        checkpoint.id,
        { kind: 'http', url: `${this.o.agentUrl}api/agent/checkpoints/${checkpoint.id}/blobs/`, grant },
        { timeoutMs: this.o.timeoutMs, recompute, ...(base === null ? {} : { base }) },
      );
      if (manifest.checkpoint_id !== checkpoint.id) {
        throw new ResumeError(
          'RESUME_ERR_AGENT_BAD_ANSWER',
          `The agent answered for checkpoint ${manifest.checkpoint_id}, not ${checkpoint.id}.`,
          { status: 502, hint: 'Restart the kernel so it loads the agent shipped with this service.', context },
        );
      }
      // The agent's own history is complete by construction (it includes the cells of the checkpoint
      // it was restored from), whereas records posted in the background may still be in flight.
      const cells = (await agent.history()).map(toCellRecord);
      const committed = await this.commit({
        checkpointId: checkpoint.id,
        manifest,
        cells,
        ...blobsOf(manifest),
        ...(plan === null ? {} : { plan }),
        restoreOnNextStart: SERVER_LEAVING.has(trigger),
        ...(this.o.retention === undefined ? {} : { retention: this.o.retention }),
        ...(this.o.quotaBytes === undefined ? {} : { quotaBytes: this.o.quotaBytes }),
        ...(this.o.now === undefined ? {} : { now: this.o.now() }),
      });
      this.o.planning.bandwidth.noteWrite(committed.bytesStored, manifest.timings.upload_s, manifest.groups.filter((g) => g.stored_in === undefined).length);
      const seconds = (performance.now() - started) / 1000;
      metrics.checkpoints.inc({ trigger, status: 'complete' });
      metrics.checkpointDuration.observe(seconds);
      logger.info(
        {
          ...context,
          seconds: Number(seconds.toFixed(3)),
          bytes: committed.bytesStored,
          bytesReused: committed.bytesReused,
          stored: manifest.variables.filter((v) => v.how === 'stored').length,
          imported: manifest.imports.length,
          recompute: manifest.recompute.map((r) => r.name),
        },
        'checkpoint complete',
      );
      return committed;
    } catch (e) {
      metrics.checkpoints.inc({ trigger, status: 'failed' });
      const reason = e instanceof Error ? e.message : String(e);
      // Best effort (failing it also unlists its blobs, in the same transaction): if the store
      // itself is down this fails too, and the checkpoint stays `writing`, never visible, until
      // the maintenance round marks it abandoned and collects its blobs.
      await store.failCheckpoint(checkpoint.id, reason).catch((err: unknown) => {
        logger.warn({ ...context, err: String(err) }, 'could not mark the checkpoint failed');
      });
      throw new ResumeError('RESUME_ERR_CHECKPOINT_FAILED', `Checkpoint of ${session.notebookPath} failed: ${reason}`, {
        status: isResumeError(e) ? e.status : 500,
        hint: isResumeError(e) ? e.hint : 'See the service log for the cause.',
        context,
        cause: e,
      });
    }
  }

  /**
   * Commits, and when the answer is lost (the connection dropped after COMMIT), asks the store
   * whether the commit happened: a checkpoint that is complete must never be reported (and
   * cleaned up) as failed.
   */
  private async commit(input: CommitCheckpointInput): Promise<Checkpoint> {
    try {
      return await this.o.store.commitCheckpoint(input);
    } catch (e) {
      const now = await this.o.store.getCheckpoint(input.checkpointId).catch(() => null);
      if (now?.state === 'complete') return now;
      throw e;
    }
  }

  /**
   * What this checkpoint stores and what a restore rebuilds, planned over the kernel's own history.
   * A plan that cannot be made (an impossible one, a history that does not form a graph) is
   * logged and the checkpoint stores everything it can, as it did before plans: a checkpoint is
   * never lost to planning.
   */
  private plan(
    history: CellRecord[],
    cellTags: ReadonlyMap<string, readonly string[]> | undefined,
    context: Record<string, string>,
  ): ReplicationPlan | null {
    const { strategy, alpha, bandwidth } = this.o.planning;
    try {
      const graph = HistoryGraph.fromCells(history);
      const tags = tagsByHistoryIndex(history, cellTags);
      return planReplication(graph, { ...bandwidth.current(), alpha, unknownRuntimeS: DEFAULT_UNKNOWN_RUNTIME_S }, { strategy, tags });
    } catch (e) {
      this.o.logger.warn({ ...context, strategy, reason: e instanceof Error ? e.message : String(e) }, 'no plan: storing every group');
      return null;
    }
  }

  /**
   * The session's last complete checkpoint as the agent's `base`: groups unchanged since it are
   * referenced instead of written again. None when there is none, or its manifest is not one this
   * service understands (then everything is written, as for a first checkpoint).
   */
  private async baseFor(sessionId: string): Promise<CheckpointBase | null> {
    const latest = await this.o.store.latestCompleteCheckpoint(sessionId);
    if (latest === null) return null;
    const parsed = manifestSchema.safeParse(latest.manifest);
    if (!parsed.success) {
      this.o.logger.warn({ sessionId, checkpointId: latest.id }, 'the last checkpoint has an unreadable manifest; writing every group');
      return null;
    }
    return { checkpoint_id: latest.id, groups: parsed.data.groups };
  }
}

/** Each executed cell's notebook tags, by its index in the history (cells that carry tags only). */
function tagsByHistoryIndex(
  history: readonly CellRecord[],
  cellTags: ReadonlyMap<string, readonly string[]> | undefined,
): Map<number, readonly string[]> {
  const tags = new Map<number, readonly string[]>();
  if (cellTags === undefined || cellTags.size === 0) return tags;
  history.forEach((cell, index) => {
    const found = cell.cellId === undefined ? undefined : cellTags.get(cell.cellId);
    if (found !== undefined) tags.set(index, found);
  });
  return tags;
}

/** The manifest's groups as the commit checks them: written by this checkpoint, or held by the session already. */
function blobsOf(manifest: Manifest): Pick<CommitCheckpointInput, 'blobs' | 'reused'> {
  const blobs = [];
  const reused = [];
  for (const g of manifest.groups) {
    const expected = { key: g.key, bytes: g.bytes, sha256: g.sha256 };
    if (g.stored_in === undefined) blobs.push(expected);
    else reused.push(expected);
  }
  return { blobs, reused };
}

import { manifestSchema, type Cell, type RestorePlan } from '../agent/agent-messages.js';
import { toAgentCell } from '../history/cell-record.js';
import { HistoryGraph } from '../history/index.js';
import { restorePlanFor } from '../planner/restore-plan.js';
import type { Logger } from '../log.js';
import type { Checkpoint, CheckpointStore, KernelRun, KernelSession } from '../store/checkpoint-store.js';
import type { BlobGrants } from '../web/auth/blob-grants.js';
import { recoverDiedRun } from './crash-recovery.js';

/** What a newly started kernel's agent receives when it has a session to restore. */
export type RestoreInstruction = {
  checkpoint_id: string;
  manifest: unknown;
  cells: Cell[];
  source: { kind: 'http'; url: string; grant: string };
  /** Which cells to re-run and where to bind each group (absent: the agent's own replay). */
  plan?: RestorePlan;
  /** Shown to the user above the restore summary: why this restore happened (a recovery). */
  notice?: string;
};

/**
 * Decides, when a kernel registers, whether it must restore a checkpoint, and hands it out once.
 *
 * #### Notes
 * A checkpoint the culler took is *pending* for its session. The first kernel of that session to
 * start afterwards claims it (atomically: two tabs opening the same notebook cannot both restore)
 * and restores it before its first cell. A kernel the user restarts on purpose later finds nothing
 * pending and starts empty, as a restart should.
 *
 * With nothing pending, a kernel whose predecessor in the session died (it never reported a
 * normal exit) recovers that predecessor's state: see crash-recovery.ts.
 */
export class RestoreHandout {
  private readonly store: CheckpointStore;
  private readonly grants: BlobGrants;
  private readonly agentUrl: string;
  private readonly logger: Logger;

  constructor(options: { store: CheckpointStore; grants: BlobGrants; agentUrl: string; logger: Logger }) {
    this.store = options.store;
    this.grants = options.grants;
    this.agentUrl = options.agentUrl;
    this.logger = options.logger;
  }

  /** @returns the restore the run must perform, or null when its session has none pending. */
  async handOut(session: KernelSession, run: KernelRun): Promise<RestoreInstruction | null> {
    const checkpoint = await this.store.claimPendingRestore(session.id, run.id);
    if (checkpoint === null) {
      const recovery = await recoverDiedRun(this.store, session, run, this.logger);
      return recovery === null ? null : this.instruction(session, run, recovery.checkpoint, recovery.plan, recovery.notice);
    }
    this.logger.debug({ user: session.user, runId: run.id, checkpointId: checkpoint.id }, 'restore claimed');
    // Re-run only what the checkpoint's missing variables need (not every cell after the first of them).
    const manifest = manifestSchema.safeParse(checkpoint.manifest);
    const plan = manifest.success ? restorePlanFor(HistoryGraph.fromCells(checkpoint.cells), manifest.data) : undefined;
    return this.instruction(session, run, checkpoint, plan);
  }

  private instruction(
    session: KernelSession,
    run: KernelRun,
    checkpoint: Checkpoint,
    plan: RestorePlan | undefined,
    notice?: string,
  ): RestoreInstruction {
    return {
      ...(plan === undefined ? {} : { plan }),
      ...(notice === undefined ? {} : { notice }),
      checkpoint_id: checkpoint.id,
      manifest: checkpoint.manifest,
      cells: checkpoint.cells.map(toAgentCell),
      source: {
        kind: 'http',
        url: `${this.agentUrl}api/agent/checkpoints/${checkpoint.id}/blobs/`,
        grant: this.grants.issue({
          user: session.user,
          runId: run.id,
          checkpointId: checkpoint.id,
          action: 'download',
        }),
      },
    };
  }
}

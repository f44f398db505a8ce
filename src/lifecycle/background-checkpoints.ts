import type { KernelCheckpoints, KernelOutcome } from '../checkpoint/kernel-checkpoints.js';
import type { ServiceTouches } from '../culler/service-touches.js';
import type { UserServers } from '../culler/user-servers.js';
import type { Logger } from '../log.js';
import type { CheckpointStore, KernelRun, KernelSession } from '../store/checkpoint-store.js';
import { PeriodicTask } from './periodic-task.js';

export type BackgroundCheckpointsOptions = {
  store: CheckpointStore;
  servers: UserServers;
  checkpoints: KernelCheckpoints;
  /** Shared with the culler: a background checkpoint's own kernel traffic is not the user's activity. */
  touches: ServiceTouches;
  /** Seconds a kernel must have been idle, after running cells, before it is checkpointed. */
  idleS: number;
  /** Seconds between rounds. */
  everyS: number;
  now?: () => Date;
  logger: Logger;
};

/**
 * Checkpoints kernels in the background once their user ran cells and then left them idle for a
 * while (RESUME_BACKGROUND_IDLE), so that the state survives a node that dies and a cull only has
 * to upload what changed since (a second, not minutes, for a session of gigabytes).
 *
 * #### Notes
 * Which kernels qualify is decided in the database (`runsIdleSince`): the newest run of a session
 * that recorded cells after the session's last checkpoint, and none for `idleS`. A kernel that is
 * busy right now, or whose server no longer answers, is skipped and looked at again next round.
 * A failed checkpoint (a full quota, say) is not retried until the user runs more cells.
 */
export class BackgroundCheckpoints {
  private readonly o: BackgroundCheckpointsOptions;
  private readonly now: () => Date;
  private readonly rounds: PeriodicTask<KernelOutcome[]>;

  constructor(options: BackgroundCheckpointsOptions) {
    this.o = options;
    this.now = options.now ?? (() => new Date());
    this.rounds = new PeriodicTask({ name: 'jupyterhub-resume-background-checkpoints', everyS: options.everyS, work: () => this.runRound() });
  }

  start(): void {
    this.rounds.start();
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }

  /** Runs one round now (or joins the one in progress); @returns what happened to each kernel tried. */
  round(): Promise<KernelOutcome[]> {
    return this.rounds.runNow();
  }

  private async runRound(): Promise<KernelOutcome[]> {
    const { store, logger } = this.o;
    const outcomes: KernelOutcome[] = [];
    let due: Array<KernelRun & { session: KernelSession; lastCellAt: Date }>;
    try {
      due = await store.runsIdleSince(new Date(this.now().getTime() - this.o.idleS * 1000));
    } catch (e) {
      logger.warn({ reason: e instanceof Error ? e.message : String(e) }, 'background checkpoint round skipped');
      return outcomes;
    }
    for (const run of due) {
      const ctx = { user: run.session.user, server: run.session.server, kernelId: run.kernelId, runId: run.id };
      try {
        const kernel = (await this.o.servers.kernels(run.serverUrl)).find((k) => k.id === run.kernelId);
        if (kernel === undefined || kernel.executionState === 'busy') {
          logger.debug({ ...ctx, state: kernel?.executionState ?? 'gone' }, 'background checkpoint skipped');
          continue;
        }
        const server = { user: run.session.user, name: run.session.server, url: run.serverUrl };
        const from = this.now();
        const outcome = await this.o.checkpoints.checkpointKernel(server, kernel, [run], 'periodic');
        // The user was last active when their last cell was recorded; our checkpoint came after.
        this.o.touches.set(server.user, server.name, { from, to: this.now(), lastActivityBefore: run.lastCellAt });
        outcomes.push(outcome);
      } catch (e) {
        // The server is gone or does not answer: nothing to save from here.
        logger.debug({ ...ctx, reason: e instanceof Error ? e.message : String(e) }, 'background checkpoint skipped: server unreachable');
      }
    }
    return outcomes;
  }
}

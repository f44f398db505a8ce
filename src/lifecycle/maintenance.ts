import type { Logger } from '../log.js';
import type { BlobStore, CheckpointStore, GarbageReport, RetentionPolicy } from '../store/checkpoint-store.js';
import { PeriodicTask } from './periodic-task.js';

export type MaintenanceOptions = {
  store: CheckpointStore;
  blobs: BlobStore;
  retention: RetentionPolicy;
  /** A checkpoint still `writing` after this long lost its writer (RESUME_CHECKPOINT_TIMEOUT plus a margin). */
  abandonedAfterS: number;
  everyS: number;
  now?: () => Date;
  logger: Logger;
};

export type MaintenanceReport = { abandoned: number; pruned: number; garbage: GarbageReport };

/**
 * Keeps the store's size in check: fails checkpoints whose writer died, applies retention to
 * sessions nobody checkpoints any more (commits apply it to their own session), and collects the
 * blobs and objects nothing lists. Runs at start-up (a crash may have left garbage) and then every
 * RESUME_MAINTENANCE_EVERY seconds.
 */
export class Maintenance {
  private readonly o: MaintenanceOptions;
  private readonly now: () => Date;
  private readonly rounds: PeriodicTask<MaintenanceReport | null>;

  constructor(options: MaintenanceOptions) {
    this.o = options;
    this.now = options.now ?? (() => new Date());
    this.rounds = new PeriodicTask({ name: 'jupyterhub-resume-maintenance', everyS: options.everyS, work: () => this.runRound() });
  }

  start(): void {
    this.rounds.start({ runNow: true });
  }

  stop(): Promise<void> {
    return this.rounds.stop();
  }

  /** One round now (or the one in progress); null when the store was unavailable. */
  round(): Promise<MaintenanceReport | null> {
    return this.rounds.runNow();
  }

  private async runRound(): Promise<MaintenanceReport | null> {
    const { store, blobs, logger } = this.o;
    const now = this.now();
    try {
      const abandoned = await store.failAbandonedCheckpoints(new Date(now.getTime() - this.o.abandonedAfterS * 1000));
      if (abandoned.length > 0) logger.warn({ checkpoints: abandoned }, 'checkpoints abandoned by their writer marked failed');
      const pruned = await store.pruneCheckpoints(this.o.retention, now);
      const garbage = await blobs.collectGarbage({ abandonedAfterS: this.o.abandonedAfterS, now });
      return { abandoned: abandoned.length, pruned: pruned.length, garbage };
    } catch (e) {
      logger.warn({ reason: e instanceof Error ? e.message : String(e) }, 'maintenance round failed; retrying next round');
      return null;
    }
  }
}

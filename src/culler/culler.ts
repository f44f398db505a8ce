import type { KernelCheckpoints } from '../checkpoint/kernel-checkpoints.js';
import { isResumeError } from '../errors.js';
import type { HubClient, HubServer } from '../hub/hub-client.js';
import { PeriodicTask } from '../lifecycle/periodic-task.js';
import type { Logger } from '../log.js';
import type { CheckpointStore, KernelRun } from '../store/checkpoint-store.js';
import type { ServiceMetrics } from '../web/service-metrics.js';
import { type ServiceTouch, shouldCull, userLastActivity } from './cull-policy.js';
import { ServiceTouches } from './service-touches.js';
import type { UserServers } from './user-servers.js';

export type CullerOptions = {
  hub: HubClient;
  store: CheckpointStore;
  servers: UserServers;
  checkpoints: KernelCheckpoints;
  timeoutS: number;
  everyS: number;
  /** Stop a server even when its checkpoint failed (default false: keep it, retry next round). */
  cullOnCheckpointFailure: boolean;
  /** The proxy's URL: reaches servers whose kernels never registered a direct URL. */
  hubPublicUrl?: string;
  now?: () => Date;
  /** Touches shared with the background checkpoints (default: the culler's own). */
  touches?: ServiceTouches;
  metrics: ServiceMetrics;
  logger: Logger;
};

/** What one sweep did with a server, for logs and tests. */
export type ServerOutcome =
  | 'not-idle'
  | 'kept-busy'
  | 'kept-checkpoint-failed'
  | 'culled'
  | 'stop-failed'
  | 'error';

/**
 * Culls idle servers like jupyterhub-idle-culler, but checkpoints every kernel first and never
 * stops a server with a busy kernel.
 *
 * #### Notes
 * A round lists ready servers (paginated), asks the pure `shouldCull` about each, and only for
 * idle ones does I/O: list kernels (with `no_track_activity`), checkpoint each, re-check that none
 * became busy, then `DELETE` through the hub. One server failing never stops the round.
 * Everything the service does to a server is remembered as a *touch* so it is not mistaken for
 * user activity in the next round.
 */
export class Culler {
  private readonly o: CullerOptions;
  private readonly now: () => Date;
  private readonly touches: ServiceTouches;
  private readonly rounds: PeriodicTask<Map<string, ServerOutcome>>;

  constructor(options: CullerOptions) {
    this.o = options;
    this.now = options.now ?? (() => new Date());
    this.touches = options.touches ?? new ServiceTouches();
    this.rounds = new PeriodicTask({ name: 'jupyterhub-resume-culler', everyS: options.everyS, work: () => this.runSweep() });
  }

  /** Schedules rounds every `everyS` seconds (node-cron), the first one right away. */
  start(): void {
    // Like the idle culler: do not wait a whole period for the first round after a restart.
    this.rounds.start({ runNow: true });
  }

  /** Stops scheduling and waits for a round in progress. Idempotent. */
  stop(): Promise<void> {
    return this.rounds.stop();
  }

  /**
   * Runs one round now (or joins the round in progress).
   * @returns what happened to each considered server, keyed `user/server`.
   */
  sweep(): Promise<Map<string, ServerOutcome>> {
    return this.rounds.runNow();
  }

  private async runSweep(): Promise<Map<string, ServerOutcome>> {
    const { hub, logger } = this.o;
    const outcomes = new Map<string, ServerOutcome>();
    try {
      for await (const user of hub.listUsers({ state: 'ready' })) {
        for (const server of user.servers) {
          const key = serverKey(server);
          try {
            outcomes.set(key, await this.handleServer(server));
          } catch (e) {
            outcomes.set(key, 'error');
            logger.error({ err: e, user: server.user, server: server.name }, 'error while handling a server; continuing');
          }
        }
      }
    } catch (e) {
      // The hub being unreachable is expected now and then (restarts); one line, no stack.
      if (isResumeError(e)) logger.warn({ code: e.code }, `culling round skipped: ${e.message}`);
      else logger.error({ err: e }, 'culling round failed');
    }
    return outcomes;
  }

  private async handleServer(server: HubServer): Promise<ServerOutcome> {
    const { logger, metrics } = this.o;
    const ctx = { user: server.user, server: server.name };
    const previous = this.touches.get(server.user, server.name);
    const decision = shouldCull(server, this.now(), this.o.timeoutS, previous);
    if (!decision.cull) {
      logger.debug({ ...ctx, reason: decision.reason }, 'not culling');
      return 'not-idle';
    }

    // What the user did last, not what our previous round did: retries must keep seeing the idleness.
    const touch: ServiceTouch = {
      from: this.now(),
      to: this.now(),
      lastActivityBefore: userLastActivity(server, previous),
    };
    this.touches.set(server.user, server.name, touch);
    try {
      const runs = await this.o.store.listRunsForServer(server.user, server.name);
      const serverUrl = await this.reachableUrl(server, runs);
      if (serverUrl === null && !this.o.cullOnCheckpointFailure) {
        // Without a way in we cannot know whether kernels hold state: keeping the server is the safe side.
        logger.warn(
          ctx,
          'not stopping the server: no kernel of it registered a direct URL and RESUME_HUB_PUBLIC_URL is not set, so its kernels cannot be checkpointed',
        );
        metrics.culls.inc({ decision: 'kept-checkpoint-failed' });
        return 'kept-checkpoint-failed';
      }
      const kernels = serverUrl === null ? [] : await this.o.servers.kernels(serverUrl);
      const busy = kernels.filter((k) => k.executionState === 'busy');
      if (busy.length > 0) {
        logger.info({ ...ctx, kernels: busy.map((k) => k.id) }, `not culling: ${busy.length} kernel(s) busy`);
        metrics.culls.inc({ decision: 'kept-busy' });
        return 'kept-busy';
      }

      logger.info({ ...ctx, kernels: kernels.length }, `culling server: ${decision.reason}`);
      const failures: string[] = [];
      for (const kernel of kernels) {
        if (serverUrl === null) break;
        const outcome = await this.o.checkpoints.checkpointKernel({ user: server.user, name: server.name, url: serverUrl }, kernel, runs, 'cull');
        if (outcome.status === 'failed') failures.push(`kernel ${kernel.id}: ${outcome.reason}`);
      }
      if (failures.length > 0 && !this.o.cullOnCheckpointFailure) {
        logger.warn(
          { ...ctx, reasons: failures },
          'not stopping the server: a checkpoint failed (set RESUME_CULL_ON_CHECKPOINT_FAILURE to stop anyway); retrying next round',
        );
        metrics.culls.inc({ decision: 'kept-checkpoint-failed' });
        return 'kept-checkpoint-failed';
      }

      // A user may have started a cell while we were saving: never stop a busy kernel.
      if (serverUrl !== null && kernels.length > 0) {
        const now = await this.o.servers.kernels(serverUrl);
        if (now.some((k) => k.executionState === 'busy')) {
          logger.info(ctx, 'not culling: a kernel became busy during the checkpoint');
          metrics.culls.inc({ decision: 'kept-busy' });
          return 'kept-busy';
        }
      }
      let result: 'stopped' | 'pending';
      try {
        result = await this.o.hub.stopServer(server.user, server.name);
      } catch (e) {
        logger.error({ ...ctx, code: isResumeError(e) ? e.code : undefined, reason: String(e) }, 'could not stop the server');
        metrics.culls.inc({ decision: 'stop-failed' });
        return 'stop-failed';
      }
      logger.info({ ...ctx, result }, result === 'stopped' ? 'server stopped' : 'server is slow to stop');
      metrics.culls.inc({ decision: 'culled' });
      this.touches.delete(server.user, server.name);
      return 'culled';
    } finally {
      touch.to = this.now();
    }
  }

  /**
   * The server's direct URL from its newest registered kernel (no proxy: proxied requests count as
   * activity), if it still answers; else the proxy URL when configured; else null.
   */
  private async reachableUrl(server: HubServer, runs: KernelRun[]): Promise<string | null> {
    const direct = runs[0]?.serverUrl;
    if (direct !== undefined && (await this.o.servers.isReachable(direct))) return direct;
    if (this.o.hubPublicUrl !== undefined) return `${this.o.hubPublicUrl}${server.url}`;
    return null;
  }
}

function serverKey(server: HubServer): string {
  return `${server.user}/${server.name}`;
}

import cron, { type ScheduledTask } from 'node-cron';
import type { CheckpointRunner } from '../checkpoint/checkpoint-runner.js';
import { isResumeError } from '../errors.js';
import type { HubClient, HubServer } from '../hub/hub-client.js';
import type { Logger } from '../log.js';
import type { CheckpointStore, KernelRun, KernelSession } from '../store/checkpoint-store.js';
import type { ServiceMetrics } from '../web/service-metrics.js';
import { type ServiceTouch, shouldCull, userLastActivity } from './cull-policy.js';
import type { AgentConnection, KernelAdopter, RunningKernel, UserServers } from './user-servers.js';

export type CullerOptions = {
  hub: HubClient;
  store: CheckpointStore;
  servers: UserServers;
  adopter: KernelAdopter;
  checkpoints: CheckpointRunner;
  timeoutS: number;
  everyS: number;
  /** Stop a server even when its checkpoint failed (default false: keep it, retry next round). */
  cullOnCheckpointFailure: boolean;
  /** The proxy's URL: reaches servers whose kernels never registered a direct URL. */
  hubPublicUrl?: string;
  now?: () => Date;
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
  private readonly touches = new Map<string, ServiceTouch>();
  private task: ScheduledTask | null = null;
  private sweeping: Promise<Map<string, ServerOutcome>> | null = null;

  constructor(options: CullerOptions) {
    this.o = options;
    this.now = options.now ?? (() => new Date());
  }

  /** Schedules rounds every `everyS` seconds (node-cron), the first one right away. */
  start(): void {
    if (this.task !== null) return;
    this.task = cron.schedule(cronExpression(this.o.everyS), () => this.sweep().then(() => undefined), {
      name: 'jupyterhub-resume-culler',
      noOverlap: true,
    });
    // Like the idle culler: do not wait a whole period for the first round after a restart.
    void this.sweep();
  }

  /** Stops scheduling and waits for a round in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.task !== null) {
      await this.task.destroy();
      this.task = null;
    }
    if (this.sweeping !== null) await this.sweeping.catch(() => undefined);
  }

  /**
   * Runs one round now (or joins the round in progress).
   * @returns what happened to each considered server, keyed `user/server`.
   */
  sweep(): Promise<Map<string, ServerOutcome>> {
    if (this.sweeping === null) {
      this.sweeping = this.runSweep().finally(() => {
        this.sweeping = null;
      });
    }
    return this.sweeping;
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
    const key = serverKey(server);
    const ctx = { user: server.user, server: server.name };
    const previous = this.touches.get(key);
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
    this.touches.set(key, touch);
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
        const failure = await this.checkpointKernel(server, serverUrl, kernel, runs);
        if (failure !== null) failures.push(failure);
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
      this.touches.delete(key);
      return 'culled';
    } finally {
      touch.to = this.now();
    }
  }

  /** Checkpoints one kernel; @returns null on success, or the reason it failed. */
  private async checkpointKernel(
    server: HubServer,
    serverUrl: string,
    kernel: RunningKernel,
    runs: Array<KernelRun & { session: KernelSession }>,
  ): Promise<string | null> {
    const { logger } = this.o;
    const ctx = { user: server.user, server: server.name, kernelId: kernel.id };
    let connection: AgentConnection;
    try {
      connection = await this.o.servers.connectAgent(serverUrl, kernel.id);
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      logger.warn({ ...ctx, code: isResumeError(e) ? e.code : undefined, reason }, 'could not connect to the kernel');
      return `kernel ${kernel.id}: ${reason}`;
    }
    try {
      // The newest run of this kernel id is the live process (a restart keeps the id).
      const registered = runs.find((r) => r.kernelId === kernel.id);
      const target =
        registered !== undefined
          ? { session: registered.session, run: registered }
          : await this.o.adopter.adopt(server, serverUrl, kernel, connection.agent);
      await this.o.checkpoints.checkpoint(target, connection.agent, 'cull', { cellTags: await this.cellTags(serverUrl, kernel.id) });
      return null;
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      logger.warn({ ...ctx, code: isResumeError(e) ? e.code : undefined, reason }, 'checkpoint failed');
      return `kernel ${kernel.id}: ${reason}`;
    } finally {
      await connection.dispose();
    }
  }

  /**
   * The notebook's cell tags for the plan. Best effort: without them the plan still honours the
   * `# resume:` comments, so a server that cannot say (no notebook file, an old server) is no
   * reason to lose the checkpoint.
   */
  private async cellTags(serverUrl: string, kernelId: string): Promise<ReadonlyMap<string, readonly string[]>> {
    try {
      return (await this.o.servers.notebookCellTags(serverUrl, kernelId)) ?? new Map();
    } catch (e) {
      this.o.logger.warn({ kernelId, reason: e instanceof Error ? e.message : String(e) }, 'could not read the notebook\'s cell tags; planning without them');
      return new Map();
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

/**
 * node-cron has a seconds field, and a step that does not divide its unit restarts at every unit
 * (`*\/45` seconds fires at :00 and :45). So a period is rounded down to the nearest one that
 * divides the minute, the hour or the day, and rounds stay evenly spaced.
 */
export function cronExpression(everyS: number): string {
  const largestDivisor = (value: number, of: number) => {
    for (let d = Math.max(1, Math.min(Math.floor(value), of)); d > 1; d -= 1) if (of % d === 0) return d;
    return 1;
  };
  const s = Math.max(1, Math.round(everyS));
  if (s < 60) return `*/${largestDivisor(s, 60)} * * * * *`;
  if (s < 3600) return `0 */${largestDivisor(s / 60, 60)} * * * *`;
  return `0 0 */${largestDivisor(s / 3600, 24)} * * *`;
}

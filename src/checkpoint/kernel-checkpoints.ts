import { isResumeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Checkpoint, CheckpointStore, CheckpointTrigger, KernelRun, KernelSession } from '../store/checkpoint-store.js';
import type { KernelAdopter, RunningKernel, UserServers } from '../culler/user-servers.js';
import type { CheckpointRunner } from './checkpoint-runner.js';

/** A user's server as the checkpoints of its kernels need it: whose, which, and where it answers. */
export type ServerRef = { user: string; name: string; url: string };

/** What happened to one kernel of a server. */
export type KernelOutcome =
  | { kernelId: string; status: 'complete'; checkpoint: Checkpoint }
  | { kernelId: string; status: 'busy' }
  | { kernelId: string; status: 'failed'; reason: string; error: unknown };

/**
 * Checkpoints the kernels of a user's server, whoever asks: the culler before it stops a server,
 * the background round after a kernel went idle, a user through the API, the server itself as it
 * is being stopped (preStop).
 *
 * #### Notes
 * Two checkpoints of one kernel never run at once: a cull arriving while a background checkpoint
 * of the same kernel is uploading waits for it, and is then cheap (it uploads only what changed
 * since). A kernel that never registered (it started before the service was installed) is adopted
 * first, as the culler always did.
 */
export class KernelCheckpoints {
  private readonly servers: UserServers;
  private readonly adopter: KernelAdopter;
  private readonly runner: CheckpointRunner;
  private readonly store: CheckpointStore;
  private readonly logger: Logger;
  /** The checkpoint in progress per kernel (`serverUrl kernelId`), so the next one waits its turn. */
  private readonly inProgress = new Map<string, Promise<unknown>>();

  constructor(options: { servers: UserServers; adopter: KernelAdopter; runner: CheckpointRunner; store: CheckpointStore; logger: Logger }) {
    this.servers = options.servers;
    this.adopter = options.adopter;
    this.runner = options.runner;
    this.store = options.store;
    this.logger = options.logger;
  }

  /**
   * Checkpoints every idle kernel of a server (one after another: they share the server's CPU
   * and the link to the store). Busy kernels are left alone and reported as such.
   * @param only checkpoint just these kernel ids (others are not touched).
   */
  async checkpointServer(server: ServerRef, trigger: CheckpointTrigger, only?: ReadonlySet<string>): Promise<KernelOutcome[]> {
    const runs = await this.store.listRunsForServer(server.user, server.name);
    const kernels = (await this.servers.kernels(server.url)).filter((k) => only === undefined || only.has(k.id));
    const outcomes: KernelOutcome[] = [];
    for (const kernel of kernels) {
      if (kernel.executionState === 'busy') {
        outcomes.push({ kernelId: kernel.id, status: 'busy' });
        continue;
      }
      outcomes.push(await this.checkpointKernel(server, kernel, runs, trigger));
    }
    return outcomes;
  }

  /**
   * Checkpoints one kernel; never throws for the kernel's own failures (they are the outcome).
   * @param runs the server's registered runs, newest first (listRunsForServer).
   */
  async checkpointKernel(
    server: ServerRef,
    kernel: RunningKernel,
    runs: Array<KernelRun & { session: KernelSession }>,
    trigger: CheckpointTrigger,
  ): Promise<KernelOutcome> {
    const key = `${server.url} ${kernel.id}`;
    const previous = this.inProgress.get(key);
    const mine = (previous ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => this.runCheckpoint(server, kernel, runs, trigger));
    this.inProgress.set(key, mine);
    try {
      return await mine;
    } finally {
      if (this.inProgress.get(key) === mine) this.inProgress.delete(key);
    }
  }

  private async runCheckpoint(
    server: ServerRef,
    kernel: RunningKernel,
    runs: Array<KernelRun & { session: KernelSession }>,
    trigger: CheckpointTrigger,
  ): Promise<KernelOutcome> {
    const ctx = { user: server.user, server: server.name, kernelId: kernel.id, trigger };
    let connection;
    try {
      connection = await this.servers.connectAgent(server.url, kernel.id);
    } catch (e) {
      return this.failed(ctx, 'could not connect to the kernel', e);
    }
    try {
      // The newest run of this kernel id is the live process (a restart keeps the id).
      const registered = runs.find((r) => r.kernelId === kernel.id);
      const target =
        registered !== undefined
          ? { session: registered.session, run: registered }
          : await this.adopter.adopt(server, server.url, kernel, connection.agent);
      const checkpoint = await this.runner.checkpoint(target, connection.agent, trigger, {
        cellTags: await this.cellTags(server.url, kernel.id),
      });
      return { kernelId: kernel.id, status: 'complete', checkpoint };
    } catch (e) {
      return this.failed(ctx, 'checkpoint failed', e);
    } finally {
      await connection.dispose();
    }
  }

  private failed(ctx: Record<string, string>, message: string, e: unknown): KernelOutcome {
    const reason = e instanceof Error ? e.message : String(e);
    const code = isResumeError(e) ? e.code : undefined;
    this.logger.warn({ ...ctx, code, reason }, message);
    return { kernelId: ctx['kernelId'] as string, status: 'failed', reason, error: e };
  }

  /**
   * The notebook's cell tags for the plan. Best effort: without them the plan still honours the
   * `# resume:` comments, so a server that cannot say (no notebook file, an old server) is no
   * reason to lose the checkpoint.
   */
  private async cellTags(serverUrl: string, kernelId: string): Promise<ReadonlyMap<string, readonly string[]>> {
    try {
      return (await this.servers.notebookCellTags(serverUrl, kernelId)) ?? new Map();
    } catch (e) {
      this.logger.warn({ kernelId, reason: e instanceof Error ? e.message : String(e) }, "could not read the notebook's cell tags; planning without them");
      return new Map();
    }
  }
}

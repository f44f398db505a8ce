import type { AgentClient } from '../agent/agent-client.js';
import { JupyterServerClient } from '../jupyter/jupyter-server-client.js';
import type { HubServer } from '../hub/hub-client.js';
import type { CheckpointStore, KernelRun, KernelSession } from '../store/checkpoint-store.js';
import type { KernelAdopter, RunningKernel } from './user-servers.js';

/**
 * Registers, on the agent's behalf, a kernel that never registered itself: the session comes from
 * the server's session list (the notebook the kernel serves), the run from the kernel itself.
 */
export class StoreKernelAdopter implements KernelAdopter {
  private readonly store: CheckpointStore;
  private readonly token: string;

  constructor(options: { store: CheckpointStore; token: string }) {
    this.store = options.store;
    this.token = options.token;
  }

  async adopt(
    server: Pick<HubServer, 'user' | 'name'>,
    serverUrl: string,
    kernel: RunningKernel,
    agent: AgentClient,
  ): Promise<{ session: KernelSession; run: KernelRun }> {
    const sessions = await new JupyterServerClient({ baseUrl: serverUrl, token: this.token }).listSessions();
    // A kernel with no session (a console, a kernel started over REST) is keyed by its id.
    const notebookPath = sessions.find((s) => s.kernel?.id === kernel.id)?.path ?? `kernel:${kernel.id}`;
    const status = await agent.status();
    const session = await this.store.upsertSession({
      user: server.user,
      server: server.name,
      notebookPath,
      kernelName: kernel.name,
    });
    const run = await this.store.createRun({
      sessionId: session.id,
      kernelId: kernel.id,
      serverUrl,
      agentVersion: status.agent_version,
      restoredFromCheckpointId: null,
    });
    return { session, run };
  }
}

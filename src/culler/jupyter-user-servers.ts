import { AgentClient } from '../agent/agent-client.js';
import { injectAgent } from '../agent/agent-injection.js';
import { isResumeError } from '../errors.js';
import { JupyterServerClient } from '../jupyter/jupyter-server-client.js';
import { ServerKernelChannel } from '../jupyter/server-kernel-channel.js';
import type { Logger } from '../log.js';
import type { AgentConnection, RunningKernel, UserServers } from './user-servers.js';

/**
 * Reaches users' Jupyter servers with the service's hub token (scope `access:servers`): REST with
 * `no_track_activity`, kernels over the server's websocket.
 */
export class JupyterUserServers implements UserServers {
  private readonly token: string;
  private readonly logger: Logger;

  constructor(options: { token: string; logger: Logger }) {
    this.token = options.token;
    this.logger = options.logger;
  }

  async isReachable(serverUrl: string): Promise<boolean> {
    try {
      await this.client(serverUrl, 5_000).status();
      return true;
    } catch {
      return false;
    }
  }

  async kernels(serverUrl: string): Promise<RunningKernel[]> {
    const models = await this.client(serverUrl).listKernels();
    return models.map((k) => ({
      id: k.id,
      name: k.name,
      executionState: k.execution_state,
      lastActivity: k.last_activity === '' ? null : new Date(k.last_activity),
    }));
  }

  async connectAgent(serverUrl: string, kernelId: string): Promise<AgentConnection> {
    const channel = await ServerKernelChannel.connect({
      baseUrl: serverUrl,
      token: this.token,
      kernelId,
      username: 'jupyterhub-resume',
      logger: this.logger,
    });
    const agent = new AgentClient(channel);
    try {
      await agent.status();
    } catch (e) {
      if (!isResumeError(e) || e.code !== 'RESUME_ERR_AGENT_NOT_LOADED') {
        await channel.dispose();
        throw e;
      }
      // Started without the spawner hook (or before the service was installed): load it now. It
      // cannot know what ran before, so only what serializes is saved.
      this.logger.info({ kernelId }, 'kernel has no agent; injecting it');
      await injectAgent(channel);
    }
    return { agent, dispose: () => channel.dispose() };
  }

  async notebookCellTags(serverUrl: string, kernelId: string): Promise<Map<string, string[]> | null> {
    const client = this.client(serverUrl);
    // The session gives the notebook's path relative to the server's root, as the contents API wants it.
    const session = (await client.listSessions()).find((s) => s.kernel?.id === kernelId && s.type === 'notebook');
    return session === undefined ? null : client.notebookCellTags(session.path);
  }

  private client(serverUrl: string, timeoutMs?: number): JupyterServerClient {
    return new JupyterServerClient({
      baseUrl: serverUrl,
      token: this.token,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }
}

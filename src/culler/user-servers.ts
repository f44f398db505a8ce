import type { AgentClient } from '../agent/agent-client.js';
import type { HubServer } from '../hub/hub-client.js';
import type { KernelRun, KernelSession } from '../store/checkpoint-store.js';

/** A kernel as a user's Jupyter server lists it. */
export type RunningKernel = {
  id: string;
  name: string;
  executionState: string;
  lastActivity: Date | null;
};

/** An open line to one kernel's agent; `dispose` closes the connection, never the kernel. */
export type AgentConnection = { agent: AgentClient; dispose(): Promise<void> };

/**
 * What the culler needs from users' Jupyter servers. Every call must leave the server's activity
 * untouched where the server allows it (`no_track_activity`), because the culler's own traffic
 * must not keep an idle server alive.
 */
export interface UserServers {
  /** Whether a Jupyter server answers at this URL (a stale URL from an earlier spawn does not). */
  isReachable(serverUrl: string): Promise<boolean>;
  kernels(serverUrl: string): Promise<RunningKernel[]>;
  /** Connects to a kernel's agent, loading the agent first if the kernel started without it. */
  connectAgent(serverUrl: string, kernelId: string): Promise<AgentConnection>;
  /**
   * The tags of the cells of the notebook a kernel serves, by cell id (`never-rerun`,
   * `always-store` matter to the plan); null when the kernel serves no notebook file.
   */
  notebookCellTags(serverUrl: string, kernelId: string): Promise<Map<string, string[]> | null>;
}

/**
 * Registers a kernel that is running but never registered itself (it started before the service
 * was installed, or without the spawner hook), so it can be checkpointed like any other.
 */
export interface KernelAdopter {
  adopt(
    server: Pick<HubServer, 'user' | 'name'>,
    serverUrl: string,
    kernel: RunningKernel,
    agent: AgentClient,
  ): Promise<{ session: KernelSession; run: KernelRun }>;
}

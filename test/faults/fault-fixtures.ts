/**
 * Fixtures of the fault-injection suite: the service in a child process (test/faults/fault-service.ts)
 * that can be SIGKILLed and started again on the same port, a hard kill of an embedded Postgres,
 * and a seeded random number generator so a run can be replayed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../fixtures/kernel.js';
import { waitFor } from '../fixtures/wait-for.js';

/** The service's prefix: blob URLs are built on it. */
export const FAULT_SERVICE_PREFIX = '/services/resume/';
/** How many complete checkpoints a session keeps (every commit applies it, and the suite's cleanup round). */
export const FAULT_RETENTION = { keepLast: 2, maxAgeS: 30 * 86_400 };

const SERVICE_ENTRY = join(PROJECT_ROOT, 'test', 'faults', 'fault-service.ts');
/** Keeps at most this much of the service's stderr, for failure messages. */
const OUTPUT_TAIL_BYTES = 32_768;

/** How a checkpoint asked of the service ended, as the caller saw it. */
export type CheckpointOutcome =
  | { status: 'complete'; checkpointId: string; bytesStored: number; bytesReused: number }
  | { status: 'failed'; code: string; message: string }
  /** No answer: the service went away (killed) while it worked. */
  | { status: 'lost'; reason: string };

export type FaultServiceOptions = {
  port: number;
  databaseUrl: string;
  grantSecret: string;
  blobStore: 'postgres' | 'filesystem';
  blobDir?: string;
};

/** One process of the service under test. Start with `FaultService.start()`. */
export class FaultService {
  private outputTail = '';
  private readonly exited: Promise<void>;
  private hasExited = false;

  private constructor(
    private readonly child: ChildProcess,
    /** The control API's root, e.g. `http://127.0.0.1:41234/`. */
    readonly baseUrl: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        this.hasExited = true;
        resolve();
      });
    });
    const keep = (chunk: Buffer) => {
      this.outputTail = (this.outputTail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /**
   * Starts the service and waits until its database answers.
   * @throws Error with the service's output when it exits or is not healthy in time.
   */
  static async start(options: FaultServiceOptions): Promise<FaultService> {
    const child = spawn(process.execPath, ['--import', 'tsx', SERVICE_ENTRY], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        DATABASE_URL: options.databaseUrl,
        RESUME_GRANT_SECRET: options.grantSecret,
        RESUME_BLOB_STORE: options.blobStore,
        ...(options.blobDir === undefined ? {} : { RESUME_BLOB_DIR: options.blobDir }),
        FAULT_SERVICE_PORT: String(options.port),
        RESUME_LOG_LEVEL: process.env['RESUME_TEST_LOG_LEVEL'] ?? 'warn',
      },
      // Its stdin is a pipe it never reads: it exits when the pipe closes, so a killed suite leaves no service behind.
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const service = new FaultService(child, `http://127.0.0.1:${options.port}/`);
    try {
      await waitFor(
        'the fault service to answer /control/health',
        async () => {
          if (service.hasExited) throw new Error(`the fault service exited during start-up:\n${service.output}`);
          return (await service.healthy()) || null;
        },
        60_000,
        100,
      );
      return service;
    } catch (error) {
      await service.kill();
      throw error;
    }
  }

  /** The service's last output (its log), for failure messages. */
  get output(): string {
    return this.outputTail;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** True when the service answers and its database does. */
  async healthy(): Promise<boolean> {
    const res = await fetch(`${this.baseUrl}control/health`).catch(() => null);
    if (res === null) return false;
    await res.body?.cancel();
    return res.ok;
  }

  /** Checkpoints, waiting for none in progress: no checkpoint and no blob write is running in the service. */
  async waitUntilQuiet(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      'the fault service to have no checkpoint or blob write in progress',
      async () => {
        const res = await fetch(`${this.baseUrl}control/quiet`);
        const body = (await res.json()) as { checkpoints: number; uploads: number };
        return body.checkpoints === 0 && body.uploads === 0;
      },
      timeoutMs,
      50,
    );
  }

  /** Asks the service to checkpoint the kernel of `connectionFile` as a run of that session. */
  async checkpoint(request: { connectionFile: string; sessionId: string; runId: string }): Promise<CheckpointOutcome> {
    let res: Response;
    let body: unknown;
    try {
      res = await fetch(`${this.baseUrl}control/checkpoint`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
      });
      body = await res.json();
    } catch (e) {
      return { status: 'lost', reason: e instanceof Error ? `${e.message}${e.cause ? ` (${String(e.cause)})` : ''}` : String(e) };
    }
    if (res.status === 201) {
      const { checkpoint } = body as { checkpoint: { id: string; bytesStored: number; bytesReused: number } };
      return { status: 'complete', checkpointId: checkpoint.id, bytesStored: checkpoint.bytesStored, bytesReused: checkpoint.bytesReused };
    }
    const error = body as { code?: string; message?: string };
    return { status: 'failed', code: error.code ?? `HTTP ${res.status}`, message: error.message ?? '' };
  }

  /** SIGKILL, as the OOM killer or a node failure would end it; resolves once it is gone. Idempotent. */
  async kill(): Promise<void> {
    if (!this.hasExited) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (closes its server and pool), SIGKILL if it takes too long. Idempotent. */
  async stop(): Promise<void> {
    if (this.hasExited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Kills an embedded Postgres as a power cut would: every process of the cluster is stopped
 * (SIGSTOP) first, so none of them reacts to the others' deaths, then all are SIGKILLed. No
 * shutdown checkpoint, no goodbye to clients: the next start runs crash recovery from the WAL.
 * @param dataDir the cluster's data directory (its `postmaster.pid` names the postmaster).
 * @returns the pids killed.
 */
export async function killPostgresHard(dataDir: string): Promise<number[]> {
  const postmaster = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  if (!Number.isInteger(postmaster) || postmaster <= 0) throw new Error(`no postmaster pid in ${dataDir}/postmaster.pid`);
  const stopped = new Set<number>();
  const stop = (pid: number) => {
    signal(pid, 'SIGSTOP');
    stopped.add(pid);
  };
  stop(postmaster);
  // A stopped postmaster forks no more; a backend forked just before shows up in the second scan.
  for (let scan = 0; scan < 2; scan++) {
    for (const pid of await childrenOf(postmaster)) if (!stopped.has(pid)) stop(pid);
  }
  for (const pid of stopped) signal(pid, 'SIGKILL');
  const pids = [...stopped];
  await waitFor('the Postgres processes to be gone', async () => (await Promise.all(pids.map(isGone))).every(Boolean), 30_000, 20);
  return pids;
}

/** A process that exited; zombies count as gone (nobody may reap orphans in a container). */
async function isGone(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // `pid (comm) S ...`: the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

async function childrenOf(parent: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/**
 * A small seeded PRNG (mulberry32): the same seed gives the same trials (kinds, delays, sizes).
 * @returns a function answering uniform numbers in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

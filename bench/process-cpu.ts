/**
 * CPU seconds used by each process in the service path during one measurement: this Node process
 * (the service), the kernels, and Postgres's processes. Set against the wall time, it shows which
 * process a checkpoint or restore waits on (on Linux; elsewhere kernels and Postgres read as 0).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on every Linux we run on). */
const TICKS_PER_S = 100;

/** CPU seconds per process group over one measurement. */
export type CpuUse = { wall_s: number; service_node_s: number; kernels_s: number; postgres_s: number };

type Snapshot = { at: number; node: NodeJS.CpuUsage; kernels: Map<number, number>; postgres: Map<number, number> };

/** User + system CPU seconds of a process so far; 0 when it cannot be read (gone, not Linux). */
function cpuOf(pid: number): number {
  try {
    // Fields after the command name, which may itself hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
  } catch {
    return 0;
  }
}

async function postgresPids(pool: pg.Pool): Promise<number[]> {
  // Every Postgres process but the postmaster: backends, walwriter, checkpointer, io workers.
  const { rows } = await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity');
  return rows.map((r) => r.pid);
}

/** Measures CPU use between `start()` and `stop()`. */
export class CpuMeter {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly kernelPids: () => number[],
    private readonly first: Snapshot,
  ) {}

  /**
   * @param pool a pool on the service's Postgres (to list its processes).
   * @param kernelPids the kernels to count, asked at start and at stop (a kernel started in
   *   between counts from zero).
   */
  static async start(pool: pg.Pool, kernelPids: () => number[]): Promise<CpuMeter> {
    return new CpuMeter(pool, kernelPids, await snapshot(pool, kernelPids()));
  }

  /** CPU seconds since start, per group. A process that ended in between is not counted. */
  async stop(): Promise<CpuUse> {
    const last = await snapshot(this.pool, this.kernelPids());
    const node = process.cpuUsage(this.first.node);
    const delta = (now: Map<number, number>, before: Map<number, number>) =>
      [...now].reduce((sum, [pid, cpu]) => sum + cpu - (before.get(pid) ?? 0), 0);
    return {
      wall_s: round((last.at - this.first.at) / 1000),
      service_node_s: round((node.user + node.system) / 1e6),
      kernels_s: round(delta(last.kernels, this.first.kernels)),
      postgres_s: round(delta(last.postgres, this.first.postgres)),
    };
  }
}

async function snapshot(pool: pg.Pool, kernels: number[]): Promise<Snapshot> {
  const pids = await postgresPids(pool);
  return {
    at: performance.now(),
    node: process.cpuUsage(),
    kernels: new Map(kernels.map((pid) => [pid, cpuOf(pid)])),
    postgres: new Map(pids.map((pid) => [pid, cpuOf(pid)])),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

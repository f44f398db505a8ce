/**
 * What the numbers were measured on: CPU, cores, memory, OS, and the versions of everything in
 * the path (Node, Python and the notebook's libraries, Postgres and its write-related settings).
 */
import os from 'node:os';

/** The machine and software a benchmark ran on. */
export type MachineFacts = {
  cpu_model: string;
  cores: number;
  memory_bytes: number;
  os: string;
  node: string;
  python: string;
  numpy: string;
  pandas: string;
  dill: string;
  /** Postgres settings by name, as `current_setting()` shows them (server_version among them). */
  postgres: Record<string, string>;
  /** Where temporary files (the `dir` target, the baselines' files) were written. */
  tmpdir: string;
};

/**
 * Collects the facts.
 * @param kernel versions as the kernel reports them.
 * @param postgres the service database's settings.
 */
export function machineFacts(
  kernel: { python: string; numpy: string; pandas: string; dill: string },
  postgres: Record<string, string>,
): MachineFacts {
  const cpus = os.cpus();
  return {
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory_bytes: os.totalmem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    ...kernel,
    postgres,
    tmpdir: os.tmpdir(),
  };
}

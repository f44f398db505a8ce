/**
 * How fast a local directory writes and reads, for planning a `verify` checkpoint that goes there.
 *
 * The same measure the service takes of its blob store at start-up, on the directory verify
 * checkpoints into: write a file of random bytes, read it back. No fsync, because the agent's
 * directory target does not sync either; what the plan weighs is what its checkpoint will pay.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Bandwidth } from '../planner/store-bandwidth.js';

/** Big enough that fixed costs (open, the first page faults) do not dominate. */
const PROBE_BYTES = 32 * 1024 * 1024;

/** @param dir an existing directory; the probe file is removed again. */
export async function measureDirBandwidth(dir: string, bytes = PROBE_BYTES): Promise<Bandwidth> {
  const file = join(dir, 'bandwidth-probe');
  const data = randomBytes(bytes);
  try {
    const writeStarted = performance.now();
    await writeFile(file, data);
    const writeS = (performance.now() - writeStarted) / 1000;
    const readStarted = performance.now();
    const back = await readFile(file);
    const readS = (performance.now() - readStarted) / 1000;
    if (back.length !== bytes) throw new Error(`the probe read ${back.length} of ${bytes} bytes back from ${dir}`);
    // A timer that reads 0 would make the store free; a microsecond is already faster than any disk.
    return { writeBytesPerS: bytes / Math.max(writeS, 1e-6), readBytesPerS: bytes / Math.max(readS, 1e-6) };
  } finally {
    await rm(file, { force: true });
  }
}

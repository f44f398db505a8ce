/**
 * How fast a local directory writes and reads, for planning a `verify` checkpoint that goes there.
 *
 * The same two figures the service keeps for its blob store, measured on the directory verify
 * checkpoints into: one file of random bytes written and read back (bandwidth), then a few small
 * files (the fixed cost of a file). No fsync, because the agent's directory target does not sync
 * either; what the plan weighs is what its checkpoint will pay.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Bandwidth } from '../planner/store-bandwidth.js';

/** Big enough that fixed costs (open, the first page faults) do not dominate. */
const PROBE_BYTES = 32 * 1024 * 1024;
/** Small files for the per-file cost, each about the size of a small variable's blob. */
const SMALL_FILES = 32;
const SMALL_FILE_BYTES = 1024;

/** @param dir an existing directory; the probe's files are removed again. */
export async function measureDirBandwidth(dir: string, bytes = PROBE_BYTES): Promise<Bandwidth> {
  const probeDir = join(dir, 'bandwidth-probe');
  await mkdir(probeDir);
  try {
    const big = join(probeDir, 'big');
    const write = await timed(() => writeFile(big, randomBytes(bytes)));
    const read = await timed(async () => {
      const back = await readFile(big);
      if (back.length !== bytes) throw new Error(`the probe read ${back.length} of ${bytes} bytes back from ${dir}`);
    });
    const small = Array.from({ length: SMALL_FILES }, (_, i) => join(probeDir, `small-${i}`));
    const data = randomBytes(SMALL_FILE_BYTES);
    const writeSmall = await timed(async () => {
      for (const file of small) await writeFile(file, data);
    });
    const readSmall = await timed(async () => {
      for (const file of small) await readFile(file);
    });
    // A timer that reads 0 would make the store free; a microsecond is already faster than any disk.
    return {
      writeBytesPerS: bytes / Math.max(write, 1e-6),
      readBytesPerS: bytes / Math.max(read, 1e-6),
      writeBlobS: writeSmall / SMALL_FILES,
      readBlobS: readSmall / SMALL_FILES,
    };
  } finally {
    await rm(probeDir, { recursive: true, force: true });
  }
}

/** Seconds `work` took. */
async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

/**
 * The blob store measured on its own, without the agent or HTTP: `PgBlobStore.write` of bytes
 * already in memory and `PgBlobStore.read` drained to nowhere. Compared with the service path's
 * throughput it shows how much of a checkpoint or restore is Postgres and how much the rest.
 */
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { KernelRun, KernelSession } from '../src/store/checkpoint-store.js';
import { mbPerS } from './bench-report.js';
import type { BenchService } from './bench-service.js';
import { CpuMeter, type CpuUse } from './process-cpu.js';

/** Pieces the in-memory body is fed in, as an HTTP request body arrives (64 KiB). */
const PIECE_BYTES = 64 * 1024;

/** Write and read speed of the store alone. */
export type StoreDiagnostics = {
  store_alone: {
    bytes: number;
    write_s: number;
    write_mb_s: number;
    read_s: number;
    read_mb_s: number;
    /** CPU seconds of this process (the store's client side) and of Postgres, per direction. */
    cpu: { write: CpuUse; read: CpuUse };
  };
};

/**
 * Writes `bytes` of random-looking data as one blob of a scratch checkpoint, reads it back, and
 * removes both (the checkpoint is marked failed, so it is never restored).
 * @param target the session and run the scratch checkpoint belongs to.
 */
export async function measureStoreDiagnostics(
  service: BenchService,
  target: { session: KernelSession; run: KernelRun; bytes: number },
): Promise<StoreDiagnostics> {
  const { store, blobs } = service;
  const checkpoint = await store.createCheckpoint({ sessionId: target.session.id, runId: target.run.id, trigger: 'manual' });
  try {
    // One 8 MiB random block repeated: incompressible like float data (Postgres would not compress
    // it anyway, the column is STORAGE EXTERNAL), and cheap to make.
    const block = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
    const body = Readable.from(pieces(block, target.bytes), { objectMode: false });
    const writeCpu = await CpuMeter.start(service.pool, () => []);
    const w0 = performance.now();
    const stored = await blobs.write(checkpoint.id, 'diag', body);
    const writeS = (performance.now() - w0) / 1000;
    const writeUse = await writeCpu.stop();

    const readCpu = await CpuMeter.start(service.pool, () => []);
    const r0 = performance.now();
    const { body: readBack } = await blobs.read(checkpoint.id, 'diag');
    let readBytes = 0;
    for await (const chunk of readBack) readBytes += (chunk as Buffer).length;
    const readS = (performance.now() - r0) / 1000;
    const readUse = await readCpu.stop();
    if (readBytes !== stored.bytes) throw new Error(`read ${readBytes} of ${stored.bytes} bytes`);

    return {
      store_alone: {
        bytes: stored.bytes,
        write_s: round(writeS),
        write_mb_s: mbPerS(stored.bytes, writeS),
        read_s: round(readS),
        read_mb_s: mbPerS(stored.bytes, readS),
        cpu: { write: writeUse, read: readUse },
      },
    };
  } finally {
    await store.failCheckpoint(checkpoint.id, 'bench diagnostics scratch checkpoint').catch(() => undefined);
    await blobs.deleteCheckpointBlobs(checkpoint.id).catch(() => undefined);
  }
}

function* pieces(block: Buffer, total: number): Generator<Buffer> {
  for (let sent = 0; sent < total; ) {
    const offset = sent % block.length;
    const n = Math.min(PIECE_BYTES, total - sent, block.length - offset);
    yield block.subarray(offset, offset + n);
    sent += n;
  }
}

function round(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

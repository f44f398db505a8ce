// TEMPORARY experiment script (deleted before hand-off).
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { startBenchService } from './bench-service.js';
import { PgBlobStore } from '../src/store/postgres/pg-blob-store.js';
import { CpuMeter } from './process-cpu.js';

const root = await mkdtemp(join(tmpdir(), 'jhr-scratch-'));
await chmod(root, 0o755);
const svc = await startBenchService(join(root, 'pg'));
const block = Buffer.alloc(8 * 1024 * 1024);
for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
function* pieces(total: number) { for (let s = 0; s < total; ) { const o = s % block.length; const n = Math.min(65536, total - s, block.length - o); yield block.subarray(o, o + n); s += n; } }
const session = await svc.store.upsertSession({ user: 'x', server: '', notebookPath: 'n', kernelName: 'k' });
const run = await svc.store.createRun({ sessionId: session.id, kernelId: 'k', serverUrl: 'http://x/', agentVersion: '0', restoredFromCheckpointId: null });

// Pipelined variant of PgBlobStore.writeChunks: one insert in flight while the next chunk fills.
const proto = PgBlobStore.prototype as any;
const serial = proto.writeChunks;
async function pipelined(this: any, blobId: string, body: Readable, context: any) {
  const hash = createHash('sha256');
  const pending: Buffer[] = []; let pendingBytes = 0; let bytes = 0; let seq = 0;
  let inflight: Promise<void> = Promise.resolve();
  const take = (n: number) => { const out = Buffer.allocUnsafe(n); let f = 0; while (f < n) { const p = pending[0]!; const t = Math.min(p.length, n - f); p.copy(out, f, 0, t); f += t; if (t === p.length) pending.shift(); else pending[0] = p.subarray(t); } return out; };
  for await (const piece of body.iterator({ destroyOnReturn: false })) {
    const b = piece as Buffer; hash.update(b); bytes += b.length; pending.push(b); pendingBytes += b.length;
    while (pendingBytes >= this.chunkBytes) {
      const chunk = take(this.chunkBytes); pendingBytes -= this.chunkBytes;
      await inflight;
      inflight = this.insertChunk(blobId, seq++, chunk, context); inflight.catch(() => undefined);
    }
  }
  await inflight;
  if (pendingBytes > 0) await this.insertChunk(blobId, seq, take(pendingBytes), context);
  return { bytes, sha256: hash.digest('hex') };
}
const N = 512e6;
for (const [label, impl] of [['serial', serial], ['pipelined', pipelined], ['serial', serial], ['pipelined', pipelined]] as const) {
  proto.writeChunks = impl;
  const ck = await svc.store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'manual' });
  const m = await CpuMeter.start(svc.pool, () => []);
  const t0 = performance.now();
  await svc.blobs.write(ck.id, 'g0', Readable.from(pieces(N)));
  const s = (performance.now() - t0) / 1000;
  console.log(label, (N / 1e6 / s).toFixed(0), 'MB/s', JSON.stringify(await m.stop()));
  await svc.blobs.deleteCheckpointBlobs(ck.id);
}
await svc.stop();
await rm(root, { recursive: true, force: true });

// TEMPORARY experiment script (deleted before hand-off).
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { startBenchService } from './bench-service.js';
import { PgBlobStore } from '../src/store/postgres/pg-blob-store.js';
import { createPool } from '../src/store/postgres/pool.js';

const root = await mkdtemp(join(tmpdir(), 'jhr-scratch-'));
await chmod(root, 0o755);
const svc = await startBenchService(join(root, 'pg'));
const block = Buffer.alloc(8 * 1024 * 1024);
for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
function* pieces(total: number) { for (let s = 0; s < total; ) { const o = s % block.length; const n = Math.min(65536, total - s, block.length - o); yield block.subarray(o, o + n); s += n; } }
const session = await svc.store.upsertSession({ user: 'x', server: '', notebookPath: 'n', kernelName: 'k' });
const run = await svc.store.createRun({ sessionId: session.id, kernelId: 'k', serverUrl: 'http://x/', agentVersion: '0', restoredFromCheckpointId: null });
async function wal(): Promise<number> { const r = await svc.pool.query('SELECT wal_bytes::text AS b, wal_fpi::text AS f, wal_buffers_full::text AS bf FROM pg_stat_wal'); return Number(r.rows[0].b); }
async function trial(label: string, blobs: PgBlobStore, bytes: number, parallel = 1) {
  const cks = await Promise.all(Array.from({ length: parallel }, () => svc.store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'manual' })));
  const w0 = await wal();
  const t0 = performance.now();
  await Promise.all(cks.map((ck) => blobs.write(ck.id, 'g0', Readable.from(pieces(bytes / parallel)))));
  const ws = (performance.now() - t0) / 1000;
  const w1 = await wal();
  const t1 = performance.now();
  let n = 0;
  await Promise.all(cks.map(async (ck) => { const { body } = await blobs.read(ck.id, 'g0'); for await (const c of body) n += (c as Buffer).length; }));
  const rs = (performance.now() - t1) / 1000;
  console.log(`${label}: write ${(bytes / 1e6 / ws).toFixed(0)} MB/s (${ws.toFixed(2)} s), WAL ${((w1 - w0) / bytes).toFixed(2)}x, read ${(n / 1e6 / rs).toFixed(0)} MB/s`);
  for (const ck of cks) await blobs.deleteCheckpointBlobs(ck.id);
}

import { readFileSync } from 'node:fs';
function cpu(pid: number): number { try { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100; } catch { return 0; } }
async function pgCpu(): Promise<Map<number, [string, number]>> { const r = await svc.pool.query(`SELECT pid, backend_type FROM pg_stat_activity`); return new Map(r.rows.map((x: any) => [x.pid, [x.backend_type, cpu(x.pid)]])); }
const N = 512e6;
const mode = process.argv[2];
for (let i = 0; i < 2; i++) {
  const ck = await svc.store.createCheckpoint({ sessionId: session.id, runId: run.id, trigger: 'manual' });
  let before = await pgCpu(); let n0 = process.cpuUsage(); let t0 = performance.now();
  await svc.blobs.write(ck.id, 'g0', Readable.from(pieces(N)));
  let wall = (performance.now() - t0) / 1000; let after = await pgCpu(); let n1 = process.cpuUsage(n0);
  let be = [...after].reduce((s, [pid, [t, c]]) => s + (t === 'client backend' ? c - (before.get(pid)?.[1] ?? 0) : 0), 0);
  console.log('write wall', wall.toFixed(2), 'node cpu', ((n1.user + n1.system) / 1e6).toFixed(2), 'user', (n1.user/1e6).toFixed(2), 'pg backend', be.toFixed(2));
  before = await pgCpu(); n0 = process.cpuUsage(); t0 = performance.now();
  const { body } = await svc.blobs.read(ck.id, 'g0'); let n = 0; for await (const c of body) n += (c as Buffer).length;
  wall = (performance.now() - t0) / 1000; after = await pgCpu(); n1 = process.cpuUsage(n0);
  be = [...after].reduce((s, [pid, [t, c]]) => s + (t === 'client backend' ? c - (before.get(pid)?.[1] ?? 0) : 0), 0);
  console.log('read wall', wall.toFixed(2), 'node cpu', ((n1.user + n1.system) / 1e6).toFixed(2), 'user', (n1.user/1e6).toFixed(2), 'pg backend', be.toFixed(2));
  await svc.blobs.deleteCheckpointBlobs(ck.id);
}
await svc.stop();
await rm(root, { recursive: true, force: true });

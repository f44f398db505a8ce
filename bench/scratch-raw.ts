// TEMPORARY experiment script (deleted before hand-off).
import { mkdtemp, chmod, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBenchService } from './bench-service.js';
import { CpuMeter } from './process-cpu.js';

const root = await mkdtemp(join(tmpdir(), 'jhr-scratch-'));
await chmod(root, 0o755);
const svc = await startBenchService(join(root, 'pg'));
const block = Buffer.alloc(8 * 1024 * 1024);
for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
const p = svc.pool;
await p.query(`CREATE TABLE t_logged (id int, seq int, data bytea, primary key (id, seq)); ALTER TABLE t_logged ALTER COLUMN data SET STORAGE EXTERNAL`);
await p.query(`CREATE UNLOGGED TABLE t_unlogged (id int, seq int, data bytea, primary key (id, seq)); ALTER TABLE t_unlogged ALTER COLUMN data SET STORAGE EXTERNAL`);
const N = 64; // x 8 MiB = 512 MiB
for (const table of ['t_logged', 't_unlogged', 't_logged', 't_unlogged']) {
  const m = await CpuMeter.start(p, () => []);
  const t0 = performance.now();
  const c = await p.connect();
  for (let i = 0; i < N; i++) await c.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [1, i, block]);
  c.release();
  const s = (performance.now() - t0) / 1000;
  console.log(table, 'insert', (N * 8.388608 / s).toFixed(0), 'MB/s', JSON.stringify(await m.stop()));
  await p.query(`TRUNCATE ${table}`);
}
// large object for comparison
{
  const m = await CpuMeter.start(p, () => []);
  const t0 = performance.now();
  const c = await p.connect();
  await c.query('BEGIN');
  const { rows } = await c.query('SELECT lo_create(0) AS oid');
  const fd = (await c.query('SELECT lo_open($1, 131072) AS fd', [rows[0].oid])).rows[0].fd;
  for (let i = 0; i < N; i++) await c.query('SELECT lowrite($1, $2)', [fd, block]);
  await c.query('COMMIT');
  c.release();
  const s = (performance.now() - t0) / 1000;
  console.log('large object', (N * 8.388608 / s).toFixed(0), 'MB/s', JSON.stringify(await m.stop()));
}
await svc.stop();
await rm(root, { recursive: true, force: true });

/**
 * `jupyterhub-resume verify` when things go wrong: a cell raises, the file is not a notebook, the
 * user presses Ctrl-C. Whatever happens, both kernels and the checkpoint directory are gone when
 * the command exits.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../fixtures/kernel.js';
import { killProcessesMentioning, processesMentioning } from '../fixtures/processes.js';
import { waitFor } from '../fixtures/wait-for.js';

const BIN = join(PROJECT_ROOT, 'bin', 'jupyterhub-resume.js');

function runVerify(args: string[], tmp: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'verify', ...args],
      { cwd: PROJECT_ROOT, env: { ...process.env, TMPDIR: tmp }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

/** Writes an nbformat 4 notebook with these code cells. */
async function writeNotebook(path: string, cells: string[]): Promise<string> {
  const notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: cells.map((source, i) => ({ cell_type: 'code', id: `c${i}`, metadata: {}, execution_count: null, outputs: [], source })),
  };
  await writeFile(path, JSON.stringify(notebook));
  return path;
}

async function leftovers(tmp: string): Promise<{ processes: number[]; files: string[] }> {
  return {
    processes: await processesMentioning(tmp),
    files: (await readdir(tmp)).filter((name) => name.startsWith('jhr-')),
  };
}

describe('jupyterhub-resume verify (CLI) on failures', () => {
  let tmp: string;
  let notebooks: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'jhr-verify-errors-'));
    notebooks = await mkdtemp(join(tmpdir(), 'jhr-verify-notebooks-'));
  });

  after(async () => {
    await killProcessesMentioning(tmp);
    await rm(tmp, { recursive: true, force: true });
    await rm(notebooks, { recursive: true, force: true });
  });

  it('stops at the first cell that raises, names it, and still prints one JSON object', async () => {
    const nb = await writeNotebook(join(notebooks, 'broken.ipynb'), ['x = 1', 'x / 0', 'y = 2']);
    const run = await runVerify([nb, '--json'], tmp);
    assert.equal(run.code, 2, run.stderr);
    const out = JSON.parse(run.stdout) as { ok: boolean; error: { code: string; message: string } };
    assert.equal(out.ok, false);
    assert.equal(out.error.code, 'RESUME_ERR_VERIFY_CELL_FAILED');
    assert.match(out.error.message, /Code cell 2 of 3 .*ZeroDivisionError/);
    assert.match(run.stderr, /hint: .*--allow-errors/);
    assert.deepEqual(await leftovers(tmp), { processes: [], files: [] });
  });

  it('runs past failing cells with --allow-errors and compares what the notebook made', async () => {
    const nb = await writeNotebook(join(notebooks, 'broken-allowed.ipynb'), ['x = 1', 'x / 0', 'y = [x, 2]']);
    const run = await runVerify([nb, '--json', '--allow-errors'], tmp);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { ok: boolean; variables: Array<{ name: string; status: string }> };
    assert.equal(out.ok, true);
    assert.deepEqual(
      out.variables.map((v) => `${v.name}:${v.status}`),
      ['x:equal', 'y:equal'],
    );
  });

  it('refuses a plan the notebook rules out, naming the variable and the cell, and leaves out a baseline it rules out', async () => {
    const nb = await writeNotebook(join(notebooks, 'never-rerun.ipynb'), ['# resume: never-rerun\nsent = ["mail"]', 'y = len(sent)']);
    const refused = await runVerify([nb, '--json', '--plan', 'recompute-all'], tmp);
    assert.equal(refused.code, 2, refused.stderr);
    const out = JSON.parse(refused.stdout) as { ok: boolean; error: { code: string; message: string } };
    assert.equal(out.error.code, 'RESUME_ERR_PLAN_IMPOSSIBLE');
    assert.match(out.error.message, /The recompute-all plan would rebuild sent, which needs cell \[1\], marked never-rerun/);
    assert.deepEqual(await leftovers(tmp), { processes: [], files: [] });

    const optimal = await runVerify([nb, '--json'], tmp);
    assert.equal(optimal.code, 0, optimal.stderr);
    const result = JSON.parse(optimal.stdout) as { ok: boolean; timings: { dump_session_s: number | null; rerun_all_s: number | null } };
    assert.equal(result.ok, true);
    assert.equal(result.timings.rerun_all_s, null);
    assert.ok(typeof result.timings.dump_session_s === 'number');
    assert.match(optimal.stderr, /warning: the recompute-all plan was not timed: The recompute-all plan would rebuild sent/);
  });

  it('refuses a file that is not a notebook with a clear message', async () => {
    const notNotebook = join(notebooks, 'script.ipynb');
    await writeFile(notNotebook, 'print("hello")\n');
    const run = await runVerify([notNotebook], tmp);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^error RESUME_ERR_VERIFY_NOTEBOOK_INVALID: .*script\.ipynb is not a notebook verify can run: it is not JSON\./m);
  });

  it('shuts both kernels down and removes its files when interrupted with Ctrl-C', async () => {
    const marker = join(notebooks, 'long-cell-started');
    const nb = await writeNotebook(join(notebooks, 'slow.ipynb'), [
      'x = 1',
      `import pathlib, time\npathlib.Path(${JSON.stringify(marker)}).touch()\ntime.sleep(300)`,
    ]);
    const child = spawn(process.execPath, [BIN, 'verify', nb], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the long cell to start', () => existsSync(marker), 60_000, 50);
      await waitFor('both kernels to run', async () => (await processesMentioning(tmp)).length >= 2, 30_000, 50);
      child.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<'hung'>((r) => (timer = setTimeout(() => r('hung'), 30_000)));
      const code = await Promise.race([exited, hung]);
      clearTimeout(timer);
      assert.equal(code, 130, stderr);
      assert.match(stderr, /RESUME_ERR_VERIFY_INTERRUPTED/);
      assert.deepEqual(await leftovers(tmp), { processes: [], files: [] });
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

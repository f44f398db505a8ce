/**
 * `jupyterhub-resume verify`, run as a user runs it: the bin script in a child process, with the
 * test notebooks in test/notebooks/. Its `--json` output is a contract other work relies on.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../fixtures/kernel.js';
import { killProcessesMentioning, processesMentioning } from '../fixtures/processes.js';

type VerifyJson = {
  notebook: string;
  ok: boolean;
  plan: string;
  variables: Array<{ name: string; status: string; restored_by: string | null }>;
  timings: { run_s: number; checkpoint_s: number; restore_s: number; dump_session_s: number | null; rerun_all_s: number | null };
  bytes_stored: number;
};

/** Runs the CLI with its own TMPDIR (so its kernels and files can be found afterwards). */
function runVerify(args: string[], tmp: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/jupyterhub-resume.js', 'verify', ...args],
      { cwd: PROJECT_ROOT, env: { ...process.env, TMPDIR: tmp }, maxBuffer: 16 * 1024 * 1024, timeout: 240_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Parses stdout, which must be exactly one JSON object on one line. */
function parseOne(stdout: string): unknown {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, `exactly one line of JSON on stdout, got:\n${stdout}`);
  return JSON.parse(lines[0]!);
}

describe('jupyterhub-resume verify (CLI)', () => {
  let tmp: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'jhr-verify-e2e-'));
  });

  after(async () => {
    // Kernels a failed assertion may have left behind: never leak processes.
    await killProcessesMentioning(tmp);
    await rm(tmp, { recursive: true, force: true });
  });

  it('restores every variable of the round-trip notebook equal under store-all, aliases and generator included', async () => {
    const run = await runVerify(
      ['test/notebooks/roundtrip.ipynb', '--json', '--plan', 'store-all', '--after', 'test/notebooks/roundtrip-after.py'],
      tmp,
    );
    assert.equal(run.code, 0, `exit code 0 expected\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    const result = parseOne(run.stdout) as VerifyJson;
    assert.deepEqual(Object.keys(result).sort(), ['bytes_stored', 'notebook', 'ok', 'plan', 'timings', 'variables']);
    assert.equal(result.ok, true);
    assert.equal(result.plan, 'store-all');
    assert.equal(result.notebook, 'test/notebooks/roundtrip.ipynb');

    const byName = new Map(result.variables.map((v) => [v.name, v]));
    for (const v of result.variables) assert.deepEqual(Object.keys(v).sort(), ['name', 'restored_by', 'status']);
    const notEqual = result.variables.filter((v) => v.status !== 'equal').map((v) => `${v.name}:${v.status}`);
    // A generator has no fingerprint; the probe's g_next checks that it resumed in the right place.
    assert.deepEqual(notEqual, ['gen:uncomparable']);
    const expected = [
      'count', 'ratio', 'title', 'flag', 'nothing', 'a', 'b', 'registry', 'np', 'big', 'pd', 'df', 'scale',
      'scaled', 'Account', 'acct', 'square', 'squares', 'leftover', 'gen', 'first', 'second',
      'g_next', 'same', 'shared_in_dict', 'deposit_after', 'scaled_again', 'square_7', 'big_sum', 'df_total',
      'tmp_gone', 'np_is_numpy',
    ];
    assert.deepEqual(result.variables.map((v) => v.name).sort(), [...expected].sort());
    assert.equal(byName.has('tmp'), false, 'a deleted name is not resurrected');
    assert.equal(byName.get('gen')?.restored_by, 'recomputed');
    for (const name of ['a', 'b', 'big', 'df', 'acct', 'square', 'np']) {
      assert.equal(byName.get(name)?.restored_by, 'stored', `${name} is restored from the checkpoint`);
    }
    assert.ok(result.bytes_stored >= 100_000_000, `the 100 MB array is stored (${result.bytes_stored} bytes)`);
    assert.deepEqual(Object.keys(result.timings).sort(), ['checkpoint_s', 'dump_session_s', 'rerun_all_s', 'restore_s', 'run_s']);
    for (const t of Object.values(result.timings)) assert.ok(typeof t === 'number' && t >= 0);
    // The store-all migration is this run's own; recompute-all was measured beside it.
    assert.ok(Math.abs(result.timings.dump_session_s! - (result.timings.checkpoint_s + result.timings.restore_s)) <= 0.002);
    assert.deepEqual(await processesMentioning(tmp), [], 'every kernel was shut down');
    // (tsx keeps its compile cache in TMPDIR too; that one is not ours.)
    const ours = (await readdir(tmp)).filter((name) => name.startsWith('jhr-'));
    assert.deepEqual(ours, [], 'the checkpoint and the kernels\' files were removed');
  });

  it('restores every variable equal under recompute-all: nothing stored, every value rebuilt by re-running cells', async () => {
    const run = await runVerify(
      ['test/notebooks/roundtrip.ipynb', '--json', '--plan', 'recompute-all', '--no-baselines', '--after', 'test/notebooks/roundtrip-after.py'],
      tmp,
    );
    assert.equal(run.code, 0, `exit code 0 expected\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    const result = parseOne(run.stdout) as VerifyJson;
    assert.equal(result.plan, 'recompute-all');
    assert.deepEqual(result.variables.filter((v) => v.status !== 'equal').map((v) => `${v.name}:${v.status}`), ['gen:uncomparable']);
    // Modules are imported again, which counts as stored; every value comes from a re-run cell.
    const stored = result.variables.filter((v) => v.restored_by === 'stored').map((v) => v.name);
    assert.deepEqual(stored.sort(), ['np', 'pd']);
    assert.equal(result.bytes_stored, 0);
    // --no-baselines: store-all is not measured; recompute-all is this run's own migration.
    assert.equal(result.timings.dump_session_s, null);
    assert.ok(Math.abs(result.timings.rerun_all_s! - (result.timings.checkpoint_s + result.timings.restore_s)) <= 0.002);
  });

  it('restores every variable equal under the optimal plan and times both baselines in the same run', async () => {
    const run = await runVerify(['test/notebooks/roundtrip.ipynb', '--json', '--after', 'test/notebooks/roundtrip-after.py'], tmp);
    assert.equal(run.code, 0, `exit code 0 expected\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    const result = parseOne(run.stdout) as VerifyJson;
    assert.equal(result.plan, 'optimal', 'optimal is the default plan');
    assert.deepEqual(result.variables.filter((v) => v.status !== 'equal').map((v) => `${v.name}:${v.status}`), ['gen:uncomparable']);
    for (const name of ['dump_session_s', 'rerun_all_s'] as const) {
      const t = result.timings[name];
      assert.ok(typeof t === 'number' && t > 0, `${name} measured: ${t}`);
    }
    assert.deepEqual(await processesMentioning(tmp), [], 'the baselines\' kernels were shut down too');
  });

  // store-all: the optimal plan may re-run the cheap cell that made `handle` and `handle_ids` together,
  // and then the id()-keyed dict is rebuilt consistent with the new object (honestly equal).
  it('exits non-zero and names the variables that honestly differ after a restore', async () => {
    const run = await runVerify(
      ['test/notebooks/differs.ipynb', '--json', '--plan', 'store-all', '--no-baselines', '--after', 'test/notebooks/differs-after.py'],
      tmp,
    );
    assert.equal(run.code, 1, `exit code 1 expected\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    const result = parseOne(run.stdout) as VerifyJson;
    assert.equal(result.ok, false);
    const status = Object.fromEntries(result.variables.map((v) => [v.name, v.status]));
    // A re-created unseeded random generator yields new numbers; an id()-keyed dict misses.
    assert.equal(status['next_sample'], 'differs');
    assert.equal(status['found'], 'differs');
    assert.equal(status['samples'], 'uncomparable');
    for (const name of ['first_sample', 'handle', 'handle_ids', 'Handle', 'random']) assert.equal(status[name], 'equal', name);
    assert.deepEqual(await processesMentioning(tmp), []);
  });

  it('prints a table with a verdict when --json is not given', async () => {
    const run = await runVerify(['test/notebooks/differs.ipynb', '--plan', 'store-all', '--after', 'test/notebooks/differs-after.py'], tmp);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^plan:\s+store-all: \d+ groups stored, \d+ rebuilt, /m);
    assert.match(run.stdout, /^migration: this plan [\d.]+ s · store-all [\d.]+ s · recompute-all [\d.]+ s$/m);
    assert.match(run.stdout, /^variable\s+type\s+status\s+restored by/m);
    assert.match(run.stdout, /^found\s+str\s+differs\s+recomputed\s+type str became NoneType$/m);
    assert.match(run.stdout, /^FAILED: .*Not restored faithfully: next_sample, found\.$/m);
  });
});

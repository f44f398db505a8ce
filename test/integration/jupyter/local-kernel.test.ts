import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalKernel } from '../../../src/jupyter/local-kernel.js';

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function textOf(kernel: LocalKernel, expression: string): Promise<unknown> {
  const r = await kernel.channel.execute('', { silent: true, userExpressions: { v: expression } });
  const v = r.userExpressions['v'];
  assert.ok(v?.status === 'ok', JSON.stringify(v));
  return v.data['text/plain'];
}

describe('LocalKernel', () => {
  let scratch: string;
  const kernels: LocalKernel[] = [];

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'jhr-local-kernel-test-'));
  });

  after(async () => {
    await Promise.all(kernels.map((k) => k.shutdown()));
    await rm(scratch, { recursive: true, force: true });
  });

  it('writes a private connection file with a random key, its kernel name and the ports the kernel bound', async () => {
    const kernel = await LocalKernel.start({ kernelName: 'python3-test' });
    kernels.push(kernel);
    const info = JSON.parse(await readFile(kernel.connectionFile, 'utf8')) as Record<string, unknown>;
    assert.match(String(info['key']), /^[0-9a-f]{64}$/);
    assert.equal(info['kernel_name'], 'python3-test');
    for (const p of ['shell_port', 'iopub_port', 'stdin_port', 'control_port', 'hb_port']) {
      assert.ok(typeof info[p] === 'number' && info[p] > 0, `${p} bound`);
    }
    assert.equal((await stat(kernel.connectionFile)).mode & 0o777, 0o600);
    assert.ok(kernel.connectionFile.endsWith(`kernel-${kernel.kernelId}.json`));
    const other = await LocalKernel.start();
    kernels.push(other);
    const otherInfo = JSON.parse(await readFile(other.connectionFile, 'utf8')) as Record<string, unknown>;
    assert.notEqual(otherInfo['key'], info['key']);
  });

  it('starts the kernel with the extra arguments and environment it was given', async () => {
    const pkgDir = join(scratch, 'pkg');
    await mkdir(pkgDir);
    await writeFile(
      join(pkgDir, 'probe_extension.py'),
      'def load_ipython_extension(ip):\n    ip.user_ns["loaded_by"] = "probe_extension"\n',
    );
    const kernel = await LocalKernel.start({
      extraArgs: ['--ext=probe_extension'],
      env: { PYTHONPATH: pkgDir, JHR_PROBE: 'from-test', HOME_UNSET_PROBE: undefined },
    });
    kernels.push(kernel);
    assert.equal(await textOf(kernel, 'loaded_by'), "'probe_extension'");
    assert.equal(await textOf(kernel, '__import__("os").environ.get("JHR_PROBE")'), "'from-test'");
  });

  it('kills the whole process group and removes its files at shutdown, once', async () => {
    const kernel = await LocalKernel.start();
    const child = await kernel.channel.execute(
      'import subprocess\nchild = subprocess.Popen(["sleep", "300"])\nchild.pid',
    );
    const result = child.outputs.find((o) => o.type === 'execute_result');
    const childPid = Number(result?.type === 'execute_result' ? result.data['text/plain'] : NaN);
    assert.ok(isRunning(childPid));
    await Promise.all([kernel.shutdown(), kernel.shutdown()]);
    assert.ok(kernel.hasExited);
    assert.equal(existsSync(kernel.dir), false);
    const deadline = Date.now() + 5_000;
    // The grandchild may need a moment to be reaped by init after SIGKILL.
    while (isRunning(childPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(isRunning(childPid), false, 'the kernel\'s own child process was stopped too');
    assert.throws(() => kernel.channel, { code: 'RESUME_ERR_KERNEL_CHANNEL_CLOSED' });
  });

  it('fails with the kernel\'s own output when the kernel crashes during start-up', async () => {
    const broken = join(scratch, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'ipykernel_launcher.py'), 'raise SystemExit("broken on purpose")\n');
    const started = Date.now();
    await assert.rejects(LocalKernel.start({ env: { PYTHONPATH: broken }, startupTimeoutMs: 30_000 }), (error: {
      code?: string;
      message?: string;
    }) => {
      assert.equal(error.code, 'RESUME_ERR_KERNEL_START_FAILED');
      assert.match(error.message ?? '', /broken on purpose/);
      return true;
    });
    assert.ok(Date.now() - started < 20_000, 'an early exit is reported at once, not at the deadline');
  });

  it('fails at once, without waiting for its deadline, when the kernel dies after binding its ports', async () => {
    const dying = join(scratch, 'dying');
    await mkdir(dying);
    // Extensions load after the sockets are bound, while we are already handshaking.
    await writeFile(join(dying, 'exit_extension.py'), 'import os\ndef load_ipython_extension(ip):\n    os._exit(3)\n');
    const started = Date.now();
    await assert.rejects(
      LocalKernel.start({ extraArgs: ['--ext=exit_extension'], env: { PYTHONPATH: dying }, startupTimeoutMs: 60_000 }),
      (error: { code?: string; message?: string }) => {
        assert.equal(error.code, 'RESUME_ERR_KERNEL_START_FAILED');
        assert.match(error.message ?? '', /exited during start-up \(code 3\)/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 20_000);
  });

  it('fails with RESUME_ERR_KERNEL_START_FAILED when the interpreter does not exist', async () => {
    await assert.rejects(LocalKernel.start({ python: join(scratch, 'no-such-python') }), {
      code: 'RESUME_ERR_KERNEL_START_FAILED',
    });
  });
});

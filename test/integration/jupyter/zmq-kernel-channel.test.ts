import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LocalKernel } from '../../../src/jupyter/local-kernel.js';
import { startKernel } from '../../fixtures/kernel.js';
import { waitFor } from '../../fixtures/wait-for.js';

describe('ZmqKernelChannel', () => {
  let kernel: LocalKernel;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'jhr-zmq-test-'));
    kernel = await startKernel();
  });

  after(async () => {
    await kernel?.shutdown();
    await rm(scratch, { recursive: true, force: true });
  });

  it('returns stream, display and result outputs in the order the kernel sent them', async () => {
    const result = await kernel.channel.execute(
      [
        'from IPython.display import display, HTML',
        'print("first")',
        'display(HTML("<b>second</b>"))',
        'import sys; print("third", file=sys.stderr)',
        '6 * 7',
      ].join('\n'),
    );
    assert.equal(result.status, 'ok');
    assert.deepEqual(
      result.outputs.map((o) => o.type),
      ['stream', 'display_data', 'stream', 'execute_result'],
    );
    const [first, second, third, last] = result.outputs;
    assert.deepEqual(first, { type: 'stream', name: 'stdout', text: 'first\n' });
    assert.equal(second?.type === 'display_data' && second.data['text/html'], '<b>second</b>');
    assert.deepEqual(third, { type: 'stream', name: 'stderr', text: 'third\n' });
    assert.ok(last?.type === 'execute_result');
    assert.equal(last.data['text/plain'], '42');
    assert.equal(last.executionCount, result.executionCount);
  });

  it('keeps the execution counter when a request is silent', async () => {
    const before = await kernel.channel.execute('counter_probe = 1');
    const silent = await kernel.channel.execute('counter_probe += 1', { silent: true });
    const afterwards = await kernel.channel.execute('counter_probe');
    assert.equal(silent.status, 'ok');
    assert.deepEqual(silent.outputs, []);
    assert.ok(before.executionCount !== null);
    assert.equal(afterwards.executionCount, before.executionCount + 1);
    const value = afterwards.outputs.find((o) => o.type === 'execute_result');
    assert.equal(value?.type === 'execute_result' && value.data['text/plain'], '2', 'the silent code still ran');
  });

  it('evaluates user expressions after the code and reports the ones that raise', async () => {
    const result = await kernel.channel.execute('ue_value = {"a": [1, 2]}', {
      silent: true,
      userExpressions: { ok: 'len(ue_value["a"])', bad: 'ue_value["missing"]' },
    });
    assert.deepEqual(result.userExpressions['ok'], { status: 'ok', data: { 'text/plain': '2' }, metadata: {} });
    const bad = result.userExpressions['bad'];
    assert.ok(bad?.status === 'error');
    assert.equal(bad.ename, 'KeyError');
  });

  it('resolves a failing cell as an error result with its exception', async () => {
    const result = await kernel.channel.execute('raise ValueError("no good")');
    assert.equal(result.status, 'error');
    assert.equal(result.error?.ename, 'ValueError');
    assert.equal(result.error?.evalue, 'no good');
    assert.ok(result.outputs.some((o) => o.type === 'error' && o.ename === 'ValueError'));
  });

  it('gets no answer to messages signed with a wrong key, while the right key still works', async () => {
    const started = Date.now();
    await assert.rejects(
      kernel.connectChannel({ key: 'f'.repeat(64) }, { connectTimeoutMs: 1_500 }),
      (error: { code?: string }) => {
        assert.equal(error.code, 'RESUME_ERR_KERNEL_NO_REPLY');
        return true;
      },
    );
    assert.ok(Date.now() - started < 6_000);
    const still = await kernel.channel.execute('1 + 1', { silent: true, userExpressions: { v: '1 + 1' } });
    assert.equal(still.userExpressions['v']?.status, 'ok');
  });

  it('interrupts a running cell', async () => {
    const marker = join(scratch, 'started');
    const running = kernel.channel.execute(
      `import time, pathlib\npathlib.Path(${JSON.stringify(marker)}).touch()\ntime.sleep(60)`,
      { timeoutMs: 30_000 },
    );
    await waitFor('the cell to start', () => existsSync(marker), 10_000, 20);
    await kernel.channel.interrupt();
    const result = await running;
    assert.equal(result.status, 'error');
    assert.equal(result.error?.ename, 'KeyboardInterrupt');
  });

  it('times out with RESUME_ERR_KERNEL_TIMEOUT when a live kernel stays busy', async () => {
    const marker = join(scratch, 'busy');
    const running = kernel.channel.execute(
      `import time, pathlib\npathlib.Path(${JSON.stringify(marker)}).touch()\ntime.sleep(60)`,
      { timeoutMs: 30_000 },
    );
    await waitFor('the busy cell to start', () => existsSync(marker), 10_000, 20);
    // Queued behind the running cell: no answer before the deadline, but the heartbeat answers.
    await assert.rejects(kernel.channel.execute('1', { timeoutMs: 1_000 }), { code: 'RESUME_ERR_KERNEL_TIMEOUT' });
    await kernel.channel.interrupt();
    assert.equal((await running).error?.ename, 'KeyboardInterrupt');
  });

  it('fails pending requests on a closed channel and closes idempotently', async () => {
    const extra = await kernel.connectChannel();
    const marker = join(scratch, 'closing');
    // stopOnError: false, or the kernel aborts requests queued behind the interrupted cell.
    const pending = extra.execute(`import time, pathlib\npathlib.Path(${JSON.stringify(marker)}).touch()\ntime.sleep(60)`, {
      timeoutMs: 30_000,
      stopOnError: false,
    });
    await waitFor('the cell to start', () => existsSync(marker), 10_000, 20);
    await extra.dispose();
    await extra.dispose();
    await assert.rejects(pending, { code: 'RESUME_ERR_KERNEL_CHANNEL_CLOSED' });
    await assert.rejects(extra.execute('1'), { code: 'RESUME_ERR_KERNEL_CHANNEL_CLOSED' });
    // The kernel itself is still running the cell; stop it so later tests are not queued behind it.
    await kernel.channel.interrupt();
    const next = await kernel.channel.execute('"alive"', { timeoutMs: 10_000 });
    assert.equal(next.status, 'ok');
  });
});

describe('ZmqKernelChannel with a kernel that dies', () => {
  let kernel: LocalKernel | undefined;

  after(async () => {
    await kernel?.shutdown();
  });

  it('fails a pending request with RESUME_ERR_KERNEL_DEAD well before its timeout', async () => {
    kernel = await startKernel({ channel: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1_500 } });
    const k = kernel;
    const started = Date.now();
    const pending = k.channel.execute('import time; time.sleep(120)', { timeoutMs: 60_000 });
    process.kill(k.pid, 'SIGKILL');
    await k.waitForExit();
    await assert.rejects(pending, (error: { code?: string; message?: string }) => {
      assert.equal(error.code, 'RESUME_ERR_KERNEL_DEAD');
      assert.match(error.message ?? '', /heartbeat/);
      return true;
    });
    assert.ok(Date.now() - started < 15_000, 'dead kernel detected by heartbeat, not by the 60 s timeout');
    await assert.rejects(k.channel.execute('1', { timeoutMs: 30_000 }), { code: 'RESUME_ERR_KERNEL_DEAD' });
  });
});

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient, buildCommandExpression } from '../../../src/agent/agent-client.js';
import { injectAgent } from '../../../src/agent/agent-injection.js';
import type { LocalKernel } from '../../../src/jupyter/local-kernel.js';
import { AGENT_PYTHONPATH, startKernel } from '../../fixtures/kernel.js';

async function userNames(kernel: LocalKernel): Promise<{ names: string; count: string }> {
  const r = await kernel.channel.execute('', {
    silent: true,
    userExpressions: {
      names: 'sorted(k for k in get_ipython().user_ns if not k.startswith("_"))',
      count: 'get_ipython().execution_count',
    },
  });
  const names = r.userExpressions['names'];
  const count = r.userExpressions['count'];
  assert.ok(names?.status === 'ok' && count?.status === 'ok');
  return { names: String(names.data['text/plain']), count: String(count.data['text/plain']) };
}

describe('AgentClient', () => {
  let scratch: string;
  const kernels: LocalKernel[] = [];

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'jhr-agent-client-test-'));
  });

  after(async () => {
    await Promise.all(kernels.map((k) => k.shutdown()));
    await rm(scratch, { recursive: true, force: true });
  });

  it('writes the command as a JSON string literal inside the agent call', () => {
    assert.equal(
      buildCommandExpression({ op: 'flush', timeout_s: 3 }),
      `__import__('jupyterhub_resume_agent').command("{\\"op\\":\\"flush\\",\\"timeout_s\\":3}")`,
    );
  });

  it('checkpoints, reads history and restores through a real agent without touching the user\'s history', async () => {
    const source = await startKernel({ withAgent: true });
    const target = await startKernel({ withAgent: true });
    kernels.push(source, target);
    const agent = new AgentClient(source.channel);
    assert.equal((await agent.status()).protocol, 1);
    await source.channel.execute('a = [1, 2, 3]\nb = a');
    await source.channel.execute('label = "naïve ☃ \\"quoted\\" \\\\ back"');
    const before = await userNames(source);

    const dir = join(scratch, 'blobs');
    await mkdir(dir);
    const manifest = await agent.checkpoint('cp-1', { kind: 'dir', path: dir });
    const cells = await agent.history();
    assert.equal(manifest.checkpoint_id, 'cp-1');
    assert.deepEqual(
      manifest.groups.find((g) => g.names.includes('a'))?.names.sort(),
      ['a', 'b'],
      'aliases share a group',
    );
    assert.deepEqual(cells.map((c) => c.execution_count), [1, 2]);
    assert.deepEqual(await userNames(source), before, 'commands add no names and keep the counter');

    const report = await new AgentClient(target.channel).restore(manifest, cells, { kind: 'dir', path: dir });
    assert.deepEqual(
      report.variables.map((v) => [v.name, v.status]).sort(),
      [['a', 'stored'], ['b', 'stored'], ['label', 'stored']],
    );
    const label = await target.channel.execute('', { silent: true, userExpressions: { v: 'label' } });
    assert.deepEqual(label.userExpressions['v'], {
      status: 'ok',
      data: { 'text/plain': `'naïve ☃ "quoted" \\\\ back'` },
      metadata: {},
    });
  });

  it('turns an {error} answer of the agent into RESUME_ERR_AGENT_COMMAND_FAILED with the agent\'s reason', async () => {
    const kernel = await startKernel({ withAgent: true });
    kernels.push(kernel);
    await kernel.channel.execute('x = [1]');
    // A "directory" that is a regular file: the agent cannot write its blob there and answers {error}.
    const notADir = join(scratch, 'not-a-dir');
    await writeFile(notADir, 'occupied');
    await assert.rejects(
      new AgentClient(kernel.channel).checkpoint('cp-2', { kind: 'dir', path: notADir }),
      (error: { code?: string; message?: string; context?: Record<string, unknown> }) => {
        assert.equal(error.code, 'RESUME_ERR_AGENT_COMMAND_FAILED');
        assert.equal(error.context?.['agentCode'], 'RESUME_ERR_AGENT_TARGET_UNWRITABLE');
        assert.match(error.message ?? '', /cannot write blob/);
        return true;
      },
    );
    // The failed command left the kernel usable.
    assert.equal((await new AgentClient(kernel.channel).status()).protocol, 1);
  });

  it('reports RESUME_ERR_AGENT_PROTOCOL_MISMATCH for a request the agent rejects as malformed', async () => {
    const kernel = await startKernel({ withAgent: true });
    kernels.push(kernel);
    await assert.rejects(new AgentClient(kernel.channel).checkpoint('cp', { kind: 'dir', path: 'relative/dir' }), {
      code: 'RESUME_ERR_AGENT_PROTOCOL_MISMATCH',
    });
  });

  it('reports RESUME_ERR_AGENT_PROTOCOL_MISMATCH for an agent that speaks another protocol version', async () => {
    const old = join(scratch, 'old-agent', 'jupyterhub_resume_agent');
    await mkdir(old, { recursive: true });
    await writeFile(
      join(old, '__init__.py'),
      [
        'class _Answer:',
        '    def __init__(self, payload): self.payload = payload',
        '    def _repr_json_(self): return self.payload',
        'def command(request):',
        '    return _Answer({"protocol": 0, "agent_version": "0.0.1", "run_id": None, "kernel_id": None,',
        '                    "cells_recorded": 0, "records_pending": 0})',
        '',
      ].join('\n'),
    );
    const kernel = await startKernel({ env: { PYTHONPATH: join(scratch, 'old-agent') } });
    kernels.push(kernel);
    await assert.rejects(new AgentClient(kernel.channel).status(), { code: 'RESUME_ERR_AGENT_PROTOCOL_MISMATCH' });
  });

  it('reports RESUME_ERR_AGENT_NOT_LOADED when the kernel cannot import the agent', async () => {
    const kernel = await startKernel({ env: { PYTHONPATH: undefined } });
    kernels.push(kernel);
    await assert.rejects(new AgentClient(kernel.channel).status(), (error: { code?: string; hint?: string }) => {
      assert.equal(error.code, 'RESUME_ERR_AGENT_NOT_LOADED');
      assert.match(error.hint ?? '', /--ext=jupyterhub_resume_agent/);
      return true;
    });
  });

  it('injects the agent into a running kernel once, leaving its namespace and counter alone', async () => {
    const kernel = await startKernel({ env: { PYTHONPATH: undefined } });
    kernels.push(kernel);
    await kernel.channel.execute('before_injection = 41');
    const before = await userNames(kernel);

    const first = await injectAgent(kernel.channel);
    assert.equal(first.outcome, 'injected');
    assert.equal(first.status.protocol, 1);
    assert.deepEqual(await userNames(kernel), before);
    const second = await injectAgent(kernel.channel);
    assert.equal(second.outcome, 'already-loaded');

    // The injected agent records the cells that run after it, after the ones it found in
    // IPython's history (whose effects and timing it cannot know).
    await kernel.channel.execute('after_injection = before_injection + 1');
    const cells = await new AgentClient(kernel.channel).history();
    assert.deepEqual(cells.map((c) => c.code), ['before_injection = 41', 'after_injection = before_injection + 1']);
    assert.equal(cells[0]?.effects_known, false);
    assert.equal(cells[0]?.timing_known, false);
    assert.deepEqual(cells[1]?.created, ['after_injection']);
    assert.deepEqual(cells[1]?.read, ['before_injection']);
  });

  it('loads an importable agent that was never loaded as an extension', async () => {
    const kernel = await startKernel({ env: { PYTHONPATH: AGENT_PYTHONPATH } });
    kernels.push(kernel);
    await assert.rejects(new AgentClient(kernel.channel).status(), { code: 'RESUME_ERR_AGENT_NOT_LOADED' });
    assert.equal((await injectAgent(kernel.channel)).outcome, 'injected');
    assert.equal((await new AgentClient(kernel.channel).status()).protocol, 1);
  });
});

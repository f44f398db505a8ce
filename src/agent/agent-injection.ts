/**
 * Loads the agent into a kernel that is already running without it (started before the service
 * was installed, or by a kernelspec without our `--ext`).
 *
 * The kernel may run on another machine than the service, so the package's Python sources travel
 * inside one silent execute: the kernel writes them to a fresh temp dir *on its own machine*, puts
 * that dir first on `sys.path`, imports the package and calls
 * `load_ipython_extension(get_ipython())`. The code runs in its own globals, so the user's
 * namespace gains no names; being silent, it is not in the user's history and keeps the counter.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ResumeError, isResumeError } from '../errors.js';
import type { KernelChannel } from '../jupyter/kernel-channel.js';
import { AGENT_PACKAGE, AgentClient } from './agent-client.js';
import type { AgentStatus } from './agent-messages.js';

/** The agent package's source directory in this checkout. */
export const AGENT_SOURCE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), 'python', AGENT_PACKAGE);

/** What `injectAgent` did. */
export type InjectionResult = {
  /** `already-loaded` when the agent answered before anything was sent. */
  outcome: 'injected' | 'already-loaded';
  /** The agent's status after loading. */
  status: AgentStatus;
};

/**
 * Makes sure the agent runs in the kernel behind `channel`, injecting it if needed.
 * @param channel a channel to the kernel (not disposed here).
 * @param options.timeoutMs deadline of each request (default 60 s).
 * @param options.sourceDir where the package's `.py` files are read from (default: this checkout).
 * @returns whether it was injected, and the agent's status.
 * Throws RESUME_ERR_AGENT_INJECTION_FAILED when the kernel could not load it (the kernel's own
 * exception is in the message); a second call is a no-op.
 */
export async function injectAgent(
  channel: KernelChannel,
  options: { timeoutMs?: number; sourceDir?: string } = {},
): Promise<InjectionResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const agent = new AgentClient(channel, { timeoutMs });
  try {
    return { outcome: 'already-loaded', status: await agent.status() };
  } catch (error) {
    if (!isResumeError(error) || error.code !== 'RESUME_ERR_AGENT_NOT_LOADED') throw error;
  }
  const sources = await readPackageSources(options.sourceDir ?? AGENT_SOURCE_DIR);
  const reply = await channel.execute(buildInjectionCode(sources), {
    silent: true,
    storeHistory: false,
    timeoutMs,
    stopOnError: false,
  });
  if (reply.status !== 'ok') {
    const why = reply.error ? `${reply.error.ename}: ${reply.error.evalue}` : `the kernel answered ${reply.status}`;
    throw new ResumeError('RESUME_ERR_AGENT_INJECTION_FAILED', `Could not load the agent into the running kernel: ${why}.`, {
      status: 502,
      hint: 'The kernel must be a Python 3.10+ IPython kernel that can write to its temp directory; otherwise restart it with the hub\'s kernelspec, which loads the agent at start.',
    });
  }
  return { outcome: 'injected', status: await agent.status() };
}

/**
 * Reads every `.py` file of the package, keyed by its path relative to the package dir
 * (`/`-separated), skipping caches.
 * @param dir the package directory.
 */
export async function readPackageSources(dir: string): Promise<Record<string, string>> {
  const sources: Record<string, string> = {};
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((cause: unknown) => {
    throw new ResumeError('RESUME_ERR_AGENT_SOURCES_MISSING', `The agent's sources are not at ${dir}.`, {
      status: 500,
      hint: 'Run the service from a complete checkout or package (src/agent/python/ must be shipped with it).',
      cause,
    });
  });
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.py')) continue;
    const path = join(entry.parentPath, entry.name);
    const rel = relative(dir, path);
    if (rel.split(sep).includes('__pycache__')) continue;
    sources[rel.split(sep).join('/')] = await readFile(path, 'utf8');
  }
  if (!('__init__.py' in sources)) {
    throw new ResumeError('RESUME_ERR_AGENT_SOURCES_MISSING', `${dir} has no __init__.py: it is not the agent package.`, {
      status: 500,
      hint: 'Run the service from a complete checkout or package (src/agent/python/ must be shipped with it).',
    });
  }
  return sources;
}

/**
 * The Python code of the injection. Data travels as a JSON string literal (also a valid Python
 * literal, as in the command protocol) and is decoded with `json.loads`.
 * @param sources package-relative path → file content.
 */
export function buildInjectionCode(sources: Record<string, string>): string {
  const installer = `
import importlib, json, os, sys, tempfile
from IPython import get_ipython
name = ${JSON.stringify(AGENT_PACKAGE)}
if name not in sys.modules:
    root = tempfile.mkdtemp(prefix="jupyterhub-resume-agent-")
    for rel, text in json.loads(SOURCES).items():
        path = os.path.join(root, name, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    # First on the path: an older copy elsewhere on the kernel's path must not win.
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    importlib.import_module(name)
sys.modules[name].load_ipython_extension(get_ipython())
`;
  const globals = `{"__name__": "jupyterhub_resume_injection", "__builtins__": __builtins__, "SOURCES": ${JSON.stringify(JSON.stringify(sources))}}`;
  return `exec(__import__("json").loads(${JSON.stringify(JSON.stringify(installer))}), ${globals})`;
}
